"""The CausalConv1d operator contract: the one source of truth.

A Mamba layer's short causal depthwise convolution, with its bias, its optional
SiLU, its rolling state and the padding mask in one node. The exporter, the
runtime, the tests, the docs (``docs/causal_conv_op.md``) and the C++ header
``custom_ops/include/mamba_export_ops/causal_conv.h`` all follow this module;
``tests/custom_ops/test_contract_agrees.py`` fails if the header drifts.

Glossary of dimensions:
    B  batch                 C  channels (the layer's inner width)
    L  sequence length       K  kernel width (taps), K >= 1

The layout is channels-last, ``x[b, t, c]``: the layout of the layer's ``in_proj``
output, so no transpose is needed around the node.

Semantics, per batch b and channel c, with every sum and product in float32
whatever the I/O dtype:

    keep[t]   = mask[b,t] != 0                      (every t when mask is absent)
    xm[t]     = x[b,t,c] if keep[t] else 0          (a select: inf/NaN under the mask never leak)
    window    = conv_state[b,c,:] ++ xm[0..L-1]     (K-1 + L values, oldest first;
                                                    conv_state is zeros when absent)
    v[t]      = bias[c] + sum_k weight[c,k] * window[t+k]        (bias optional)
    y[b,t,c]  = act(v[t]) if keep[t] else 0         (act: identity, or SiLU for activation 1)
    new_conv_state[b,c,:] = window[L .. L+K-2]      (its last K-1 values)

Tap K-1 multiplies the newest input. For L = 0, y is empty and new_conv_state
equals conv_state (or zeros). For K = 1 the state has 0 columns.

Packed input: the attribute ``x_offset`` lets x be a window of a wider tensor, so a layer
feeds the op its ``in_proj`` output as it is, without a Split. -1 (the default) means x
is exactly (B, L, C). An offset o >= 0 means x is a (B, L, W) tensor whose channels
[o, o + C) are the op's input, C taken from the weight; W >= o + C. y is (B, L, C).
"""

from __future__ import annotations

from dataclasses import dataclass

from mamba_export.ops.contract_base import DOMAIN, ContractChecks, TensorSpec
from mamba_export.ops.contract_base import format_shape as _fmt

__all__ = ["DOMAIN", "OP_TYPE", "OP_VERSION", "INPUTS", "OUTPUTS", "ATTRIBUTES", "check_inputs"]

OP_TYPE = "CausalConv1d"
OP_VERSION = 1

# The dtypes x, conv_state, y and new_conv_state may have (all four share one, T).
IO_DTYPES = ("float32", "float16", "bfloat16")
# The taps and the bias are float32 whatever T; the mask is int64 (the model's attention mask).
FLOAT32_INPUTS = ("weight", "bias")
INT64_INPUTS = ("mask",)

# This order is the ABI: append, never reorder.
INPUTS = (
    TensorSpec("x", "(B, L, C)", "T", True, "input sequence, channels last"),
    TensorSpec("weight", "(C, K)", "float32", True, "depthwise taps; tap K-1 multiplies the newest input"),
    TensorSpec("bias", "(C,)", "float32", False, "added before the activation"),
    TensorSpec("conv_state", "(B, C, K-1)", "T", False, "the K-1 inputs before x, oldest first (zeros if absent)"),
    TensorSpec("mask", "(B, L)", "int64", False, "position t of row b is kept when mask != 0"),
)
OUTPUTS = (
    TensorSpec("y", "(B, L, C)", "T", True, "output sequence, 0 at dropped positions"),
    TensorSpec("new_conv_state", "(B, C, K-1)", "T", True, "the last K-1 inputs of the window, oldest first"),
)
INPUT_NAMES = tuple(spec.name for spec in INPUTS)
OUTPUT_NAMES = tuple(spec.name for spec in OUTPUTS)
REQUIRED_INPUTS = tuple(spec.name for spec in INPUTS if spec.required)
# Attribute name -> (ONNX type, default).
ATTRIBUTES = {"activation": ("int", 0), "x_offset": ("int", -1)}
# The value of x_offset that reads x whole (see the module docstring).
WHOLE = -1
# Values of the activation attribute.
ACTIVATIONS = {0: "none", 1: "silu"}


@dataclass(frozen=True)
class ConvDims:
    """The sizes resolved from a valid set of inputs."""

    batch: int
    length: int
    channels: int
    width: int  # K; the state has K - 1 columns


_checks = ContractChecks(OP_TYPE, INPUTS)
_fail = _checks.fail
_expect_shape = _checks.expect_shape


def check_activation(activation) -> int:
    """The activation attribute as an int, or an InputShapeError naming the allowed values."""
    if isinstance(activation, bool) or not isinstance(activation, int) or activation not in ACTIVATIONS:
        allowed = ", ".join(f"{k} ({v})" for k, v in ACTIVATIONS.items())
        _fail(f"attribute activation is {activation!r}, expected one of {allowed}")
    return activation


def check_x_offset(x_offset) -> int:
    """The x_offset attribute as an int, or an InputShapeError for a value that is not -1 or >= 0."""
    if isinstance(x_offset, bool) or not isinstance(x_offset, int) or x_offset < WHOLE:
        _fail(f"attribute x_offset is {x_offset!r}, expected -1 (the whole x) or an offset >= 0")
    return x_offset


def _window_of_x(x: tuple, weight: tuple, x_offset: int) -> tuple:
    """x's shape as the contract sees it: x itself, or the (B, L, C) window x_offset selects."""
    if len(x) != 3:
        expected = "(B, L, C)" if x_offset == WHOLE else f"(B, L, W) with x_offset = {x_offset}"
        _fail(f"x has rank {len(x)} {_fmt(x)}, expected rank 3 {expected}")
    if x_offset == WHOLE:
        return x
    if len(weight) != 2:
        _fail(f"weight is {_fmt(weight)}, expected (C, K) with K >= 1")
    channels = weight[0]
    if x[2] < x_offset + channels:
        _fail(f"x is {_fmt(x)}: x_offset = {x_offset} with width C = {channels} (from weight) "
              f"needs W >= {x_offset + channels}")
    return (x[0], x[1], channels)


def take_window(x, x_offset: int, channels: int):
    """x (numpy array or torch tensor) cut to the channels x_offset selects (x itself for WHOLE)."""
    return x if x_offset == WHOLE else x[:, :, x_offset:x_offset + channels]


def check_inputs(shapes: dict, dtypes: dict | None = None, x_offset: int = WHOLE) -> ConvDims:
    """Check input shapes (and dtypes, if given) against the contract.

    ``shapes`` maps input names to shapes; optional inputs may be missing or None.
    ``dtypes`` maps the same names to dtype names ("float32", "int64", ...).
    ``x_offset`` is the attribute's value (WHOLE: x is exactly (B, L, C)).
    Returns the resolved dimensions or raises :class:`InputShapeError` naming the
    input, the expected and the actual value.
    """
    x_offset = check_x_offset(x_offset)
    _checks.check_names(shapes)
    x = _window_of_x(tuple(int(s) for s in shapes["x"]), tuple(int(s) for s in shapes["weight"]), x_offset)
    batch, length, channels = x
    weight = tuple(int(s) for s in shapes["weight"])
    if len(weight) != 2 or weight[0] != channels or weight[1] < 1:
        _fail(f"weight is {_fmt(weight)}, expected (C, K) = ({channels}, K) with K >= 1 to match x")
    width = weight[1]
    optional = {"bias": ((channels,), "to match x (C)"),
                "conv_state": ((batch, channels, width - 1), "to match x (B, C) and weight (K - 1)"),
                "mask": ((batch, length), "to match x (B, L)")}
    for name, (expected, why) in optional.items():
        if shapes.get(name) is not None:
            _expect_shape(name, shapes[name], expected, why)
    if dtypes is not None:
        _check_dtypes({k: v for k, v in dtypes.items() if shapes.get(k) is not None})
    return ConvDims(batch, length, channels, width)


def _check_dtypes(dtypes: dict) -> None:
    _checks.check_dtypes(dtypes, "x", IO_DTYPES,
                         {"T": "to match x", "float32": "(the taps and the bias are always float32)",
                          "int64": "(the mask is the model's int64 attention mask)"})
