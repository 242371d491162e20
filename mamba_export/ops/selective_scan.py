"""The SelectiveScan operator contract: the one source of truth.

The exporter, the runtime, the tests, the docs (``docs/selective_scan_op.md``) and
the C++ header ``custom_ops/include/mamba_export_ops/contract.h`` all follow this
module; ``tests/custom_ops/test_contract_agrees.py`` fails if the header drifts.

Glossary of dimensions:
    B  batch                 D  inner width (channels)
    L  sequence length       N  state size
    G  groups of B and C (D must be a multiple of G; group g serves channels
       g*D/G .. (g+1)*D/G - 1)

Semantics (mamba-ssm's ``selective_scan_fn``), per batch b and channel d, with
every sum and product in float32 whatever the I/O dtype:

    dt_t = delta[b,d,t] + delta_bias[d]            (delta_bias optional)
    dt_t = softplus(dt_t) if delta_softplus        (torch's softplus, threshold 20)
    h_t  = exp(dt_t * A[d,:]) * h_{t-1} + dt_t * B[b,(g),:,t] * u[b,d,t]
    y_t  = <C[b,(g),:,t], h_t> + D[d] * u[b,d,t]   (D optional)
    y_t  = y_t * silu(z[b,d,t])                    (z optional)

h_{-1} is ``initial_state`` (zeros if absent). ``last_state`` is h_{L-1}, or the
initial state when L = 0 (then y is empty).

The ``layout`` attribute says how the sequences are stored. The shapes in ``INPUTS``
and ``OUTPUTS`` are those of layout 0 (channels first: u, delta, z, y are (B, D, L);
B and C are (B, N, L) or (B, G, N, L)). Layout 1 (channels last) stores the same
values as (B, L, D), and B and C as (B, L, N) or (B, L, G, N): the layout of the
matrix products around the scan in a Mamba layer, so the graph needs no transpose.
A, D, delta_bias and the states are the same in both layouts.

Packed inputs (layout 1 only): the attributes ``b_offset``, ``c_offset`` and ``z_offset``
let B, C and z be windows of a wider tensor, so a layer feeds the scan its projection
outputs as they are, without a Split. -1 (the default) means the input is exactly the
tensor named above. An offset o >= 0 means the input is a (B, L, W) tensor whose channels
[o, o + width) are the contract's tensor, width N for B and C (ungrouped only) and D for z;
W >= o + width. One tensor may feed both B and C (the x_proj output, at two offsets).

Projected delta (layout 1 only): with the optional input ``delta_weight`` (D, R) float32,
``delta`` is a (B, L, W) tensor whose channels [delta_offset, delta_offset + R) hold the
low-rank time step x_dt, and the contract's delta is

    delta[b,l,d] = sum_r delta_weight[d,r] * x_dt[b,l,r]

summed in float32 from the T-typed x_dt and not rounded to T (then delta_bias and softplus
apply as above). ``delta_offset`` must then be >= 0 and W >= delta_offset + R; without
``delta_weight`` it must be -1. A Mamba layer so feeds the scan its x_proj output as is and
needs no dt_proj MatMul. :func:`project_delta` reduces this form to the plain one.
"""

from __future__ import annotations

from dataclasses import dataclass

from mamba_export.ops.contract_base import DOMAIN, ContractChecks, TensorSpec
from mamba_export.ops.contract_base import format_shape as _fmt

__all__ = ["DOMAIN", "TensorSpec", "OP_TYPE", "OP_VERSION", "INPUTS", "OUTPUTS", "ATTRIBUTES", "check_inputs",
           "project_delta"]

OP_TYPE = "SelectiveScan"
OP_VERSION = 1
SOFTPLUS_THRESHOLD = 20.0

# The dtypes the I/O tensors (u, delta, B, C, z and the output y) may have.
IO_DTYPES = ("float32", "float16", "bfloat16")
# The parameters and the state are float32 whatever the I/O dtype: the recurrence
# drifts in half precision.
FLOAT32_INPUTS = ("A", "D", "delta_bias", "initial_state", "delta_weight")


# This order is the ABI: append, never reorder.
INPUTS = (
    TensorSpec("u", "(B, D, L)", "T", True, "input sequence"),
    TensorSpec("delta", "(B, D, L)", "T", True, "time step before bias and softplus"),
    TensorSpec("A", "(D, N)", "float32", True, "state matrix (negative for a stable scan)"),
    TensorSpec("B", "(B, N, L) or (B, G, N, L)", "T", True, "input projection per step"),
    TensorSpec("C", "(B, N, L) or (B, G, N, L)", "T", True, "output projection per step"),
    TensorSpec("D", "(D,)", "float32", False, "skip connection"),
    TensorSpec("z", "(B, D, L)", "T", False, "gate: y is multiplied by silu(z)"),
    TensorSpec("delta_bias", "(D,)", "float32", False, "added to delta before softplus"),
    TensorSpec("initial_state", "(B, D, N)", "float32", False, "state before the first step"),
    TensorSpec("delta_weight", "(D, R)", "float32", False,
               "projects the low-rank x_dt read from delta at delta_offset (layout 1)"),
)
OUTPUTS = (
    TensorSpec("y", "(B, D, L)", "T", True, "output sequence"),
    TensorSpec("last_state", "(B, D, N)", "float32", True, "state after the last step"),
)
INPUT_NAMES = tuple(spec.name for spec in INPUTS)
OUTPUT_NAMES = tuple(spec.name for spec in OUTPUTS)
REQUIRED_INPUTS = tuple(spec.name for spec in INPUTS if spec.required)
# Attribute name -> (ONNX type, default).
ATTRIBUTES = {"delta_softplus": ("int", 0), "layout": ("int", 0),
              "b_offset": ("int", -1), "c_offset": ("int", -1), "z_offset": ("int", -1),
              "delta_offset": ("int", -1)}
# The value of an offset attribute that reads the input whole (see the module docstring).
WHOLE = -1
# The inputs that may be read at an offset, and the attribute holding it.
OFFSET_ATTRIBUTES = {"B": "b_offset", "C": "c_offset", "z": "z_offset"}
# Where delta holds x_dt when delta_weight is given (the projected form); WHOLE without it.
DELTA_OFFSET_ATTRIBUTE = "delta_offset"
# Every offset attribute, in the order of ATTRIBUTES.
ALL_OFFSET_ATTRIBUTES = (*OFFSET_ATTRIBUTES.values(), DELTA_OFFSET_ATTRIBUTE)

# Values of the ``layout`` attribute.
LAYOUT_CHANNELS_FIRST = 0  # u (B, D, L); B, C (B, N, L) or (B, G, N, L)
LAYOUT_CHANNELS_LAST = 1   # u (B, L, D); B, C (B, L, N) or (B, L, G, N)
LAYOUTS = (LAYOUT_CHANNELS_FIRST, LAYOUT_CHANNELS_LAST)
# The shapes each layout gives the sequences and B / C, as the error messages spell them.
SEQUENCE_SHAPES = {LAYOUT_CHANNELS_FIRST: "(B, D, L)", LAYOUT_CHANNELS_LAST: "(B, L, D)"}
PROJECTION_SHAPES = {LAYOUT_CHANNELS_FIRST: ("(B, N, L)", "(B, G, N, L)"),
                     LAYOUT_CHANNELS_LAST: ("(B, L, N)", "(B, L, G, N)")}
# The axes that take a channels-last input of this rank to channels first (u, delta, z:
# (B, L, D) -> (B, D, L); B, C: (B, L, N) -> (B, N, L), (B, L, G, N) -> (B, G, N, L)), and
# y back from (B, D, L) to (B, L, D).
TO_CHANNELS_FIRST = {3: (0, 2, 1), 4: (0, 2, 3, 1)}
TO_CHANNELS_LAST = {3: (0, 2, 1)}


@dataclass(frozen=True)
class ScanDims:
    """The sizes resolved from a valid set of inputs."""

    batch: int
    dim: int
    length: int
    state: int
    groups_b: int  # 0 when B is (B, N, L), else G
    groups_c: int
    rank: int = 0  # R of delta_weight (D, R); 0 when delta is given plain


_checks = ContractChecks(OP_TYPE, INPUTS)
_fail = _checks.fail
_expect_shape = _checks.expect_shape


def _check_b_or_c(name, shape, batch, dim, state, length, layout) -> int:
    last = layout == LAYOUT_CHANNELS_LAST
    if len(shape) == 3:
        expected = (batch, length, state) if last else (batch, state, length)
        _expect_shape(name, shape, expected, "to match u (B, L) and A (N)")
        return 0
    if len(shape) == 4:
        groups = int(shape[2] if last else shape[1])
        if groups < 1 or dim % groups != 0:
            _fail(f"{name} has {groups} groups, which does not divide D = {dim}")
        expected = (batch, length, groups, state) if last else (batch, groups, state, length)
        _expect_shape(name, shape, expected, "to match u (B, L) and A (N)")
        return groups
    ungrouped, grouped = PROJECTION_SHAPES[layout]
    _fail(f"{name} has rank {len(shape)} {_fmt(shape)}, expected rank 3 {ungrouped} or 4 {grouped}")
    return 0


def check_layout(layout) -> int:
    """The layout attribute as an int, or InputShapeError if it is not one of LAYOUTS."""
    if isinstance(layout, bool) or layout not in LAYOUTS:
        _fail(f"attribute layout is {layout}, expected 0 (channels first) or 1 (channels last)")
    return int(layout)


def check_offsets(offsets: dict | None, layout: int = LAYOUT_CHANNELS_LAST) -> dict:
    """The offset attributes (attribute name -> value, absent ones WHOLE; delta_offset among them)
    as a full dict of ints, or InputShapeError for an unknown name, a value below -1, or an offset
    in layout 0."""
    offsets = dict(offsets or {})
    unknown = set(offsets) - set(ALL_OFFSET_ATTRIBUTES)
    if unknown:
        _fail(f"unknown offset attributes {sorted(unknown)}; they are {list(ALL_OFFSET_ATTRIBUTES)}")
    full = {}
    for attribute in ALL_OFFSET_ATTRIBUTES:
        value = offsets.get(attribute, WHOLE)
        if isinstance(value, bool) or not isinstance(value, int) or value < WHOLE:
            _fail(f"attribute {attribute} is {value!r}, expected -1 (the whole input) or an offset >= 0")
        if value != WHOLE and layout != LAYOUT_CHANNELS_LAST:
            _fail(f"attribute {attribute} is {value}: offsets need layout 1 (channels last), the layout is {layout}")
        full[attribute] = int(value)
    return full


def _window_shape(name, shape, offset, width, batch, length) -> tuple:
    """The shape of input ``name`` as the contract sees it: ``shape`` itself, or the (B, L, width)
    window that ``offset`` selects of a (B, L, W) tensor."""
    if offset == WHOLE:
        return tuple(shape)
    attribute = OFFSET_ATTRIBUTES[name]
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        _fail(f"{name} is {_fmt(shape)} with {attribute} = {offset}, expected rank 3 (B, L, W): "
              f"a grouped {name} cannot be read at an offset")
    if shape[:2] != (batch, length):
        _fail(f"{name} is {_fmt(shape)}, expected (B, L, W) with (B, L) = ({batch}, {length}) to match u")
    if shape[2] < offset + width:
        _fail(f"{name} is {_fmt(shape)}: {attribute} = {offset} with width {width} needs W >= {offset + width}")
    return (batch, length, width)


def take_windows(tensors: dict, offsets: dict, dims: ScanDims) -> dict:
    """``tensors`` (input name -> numpy array or torch tensor) with every input read at an offset
    cut to its window, so the rest of an implementation sees the plain contract."""
    widths = {"B": dims.state, "C": dims.state, "z": dims.dim}
    out = dict(tensors)
    for name, attribute in OFFSET_ATTRIBUTES.items():
        offset = offsets.get(attribute, WHOLE)
        if offset != WHOLE and out.get(name) is not None:
            out[name] = out[name][:, :, offset:offset + widths[name]]
    return out


def _projected_delta_rank(shapes: dict, offset: int, batch: int, length: int, dim: int) -> int:
    """R of delta_weight, after checking the projected form: delta_weight (D, R), delta a (B, L, W)
    tensor with W >= delta_offset + R. 0 when delta_weight is absent (then delta_offset is WHOLE)."""
    weight = shapes.get("delta_weight")
    if weight is None:
        if offset != WHOLE:
            _fail(f"attribute {DELTA_OFFSET_ATTRIBUTE} is {offset} but input delta_weight is absent")
        return 0
    weight = tuple(int(s) for s in weight)
    if offset == WHOLE:
        _fail(f"input delta_weight is given but attribute {DELTA_OFFSET_ATTRIBUTE} is -1, "
              f"expected the offset (>= 0) of x_dt in delta")
    if len(weight) != 2 or weight[0] != dim:
        _fail(f"delta_weight is {_fmt(weight)}, expected (D, R) = ({dim}, R) to match u")
    rank = weight[1]
    delta = tuple(int(s) for s in shapes["delta"])
    if len(delta) != 3 or delta[:2] != (batch, length):
        _fail(f"delta is {_fmt(delta)} with delta_weight given, expected (B, L, W) with (B, L) = "
              f"({batch}, {length}) to match u")
    if delta[2] < offset + rank:
        _fail(f"delta is {_fmt(delta)}: {DELTA_OFFSET_ATTRIBUTE} = {offset} with R = {rank} "
              f"needs W >= {offset + rank}")
    return rank


def check_inputs(shapes: dict, dtypes: dict | None = None, layout: int = LAYOUT_CHANNELS_FIRST,
                 offsets: dict | None = None) -> ScanDims:
    """Check input shapes (and dtypes, if given) against the contract.

    ``shapes`` maps input names to shapes; optional inputs may be missing or None.
    ``dtypes`` maps the same names to dtype names ("float32", "float16", ...).
    ``layout`` is the attribute's value (LAYOUTS); ``offsets`` maps offset attribute names
    (delta_offset among them) to their values (absent: WHOLE).
    Returns the resolved dimensions or raises :class:`InputShapeError` naming the
    input, the expected and the actual value.
    """
    layout = check_layout(layout)
    if shapes.get("delta_weight") is not None and layout != LAYOUT_CHANNELS_LAST:
        _fail(f"input delta_weight needs layout 1 (channels last), the layout is {layout}")
    offsets = check_offsets(offsets, layout)
    _checks.check_names(shapes)
    u = tuple(shapes["u"])
    if len(u) != 3:
        _fail(f"u has rank {len(u)} {_fmt(u)}, expected rank 3 {SEQUENCE_SHAPES[layout]}")
    if layout == LAYOUT_CHANNELS_LAST:
        batch, length, dim = u
    else:
        batch, dim, length = u
    a = tuple(shapes["A"])
    if len(a) != 2 or a[0] != dim:
        _fail(f"A is {_fmt(a)}, expected (D, N) = ({dim}, N) to match u")
    state = a[1]
    rank = _projected_delta_rank(shapes, offsets[DELTA_OFFSET_ATTRIBUTE], batch, length, dim)
    if shapes.get("delta_weight") is None:
        _expect_shape("delta", shapes["delta"], u, "to match u")
    shapes = dict(shapes)
    for name, width in (("B", state), ("C", state), ("z", dim)):
        offset = offsets[OFFSET_ATTRIBUTES[name]]
        if offset != WHOLE and shapes.get(name) is None:
            _fail(f"attribute {OFFSET_ATTRIBUTES[name]} is {offset} but input {name} is absent")
        if shapes.get(name) is not None:
            shapes[name] = _window_shape(name, shapes[name], offset, width, batch, length)
    groups_b = _check_b_or_c("B", shapes["B"], batch, dim, state, length, layout)
    groups_c = _check_b_or_c("C", shapes["C"], batch, dim, state, length, layout)
    optional = {"D": (dim,), "z": u, "delta_bias": (dim,), "initial_state": (batch, dim, state)}
    for name, expected in optional.items():
        if shapes.get(name) is not None:
            _expect_shape(name, shapes[name], expected, "to match u and A")
    if dtypes is not None:
        _check_dtypes({k: v for k, v in dtypes.items() if shapes.get(k) is not None})
    return ScanDims(batch, dim, length, state, groups_b, groups_c, rank)


def project_delta(tensors: dict, offsets: dict, dims: ScanDims):
    """The plain (B, L, D) delta of the projected form (``tensors`` holds "delta" and "delta_weight",
    numpy arrays or torch tensors, already checked): x_dt, the R channels of delta from
    delta_offset on, times delta_weight transposed, summed in float32 (float64 for float64 inputs,
    the reference's own precision) and not rounded to the I/O dtype."""
    offset = offsets[DELTA_OFFSET_ATTRIBUTE]
    x_dt = tensors["delta"][:, :, offset:offset + dims.rank]
    weight = tensors["delta_weight"]
    if hasattr(x_dt, "detach"):  # torch
        import torch

        cdt = torch.float64 if x_dt.dtype == torch.float64 else torch.float32
        return torch.matmul(x_dt.to(cdt), weight.to(cdt).T)
    import numpy as np

    cdt = np.float64 if np.asarray(x_dt).dtype == np.float64 else np.float32
    return np.matmul(np.asarray(x_dt, dtype=cdt), np.asarray(weight, dtype=cdt).T)


def _check_dtypes(dtypes: dict) -> None:
    _checks.check_dtypes(dtypes, "u", IO_DTYPES,
                         {"T": "to match u", "float32": "(parameters and state are always float32)"})
