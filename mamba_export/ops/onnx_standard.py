"""The standard-ops form of our ops: a graph rewrite any ONNX runtime can run.

:func:`rewrite_model` replaces every node of our domain with standard ONNX ops
only, keeping the node's input and output names, so the graph I/O does not
change. ``CausalConv1d`` nodes take the form of :mod:`onnx_standard_conv`,
``ResidualRMSNorm`` nodes that of :mod:`onnx_standard_norm`; this
module writes ``SelectiveScan``'s. The recurrence is an ONNX ``Scan`` whose body performs one
step for every (batch, channel) at once::

    h = exp(dt_t * A) * h + (dt_t * u_t) * B_t        y_t = sum_n h * C_t

Everything inside runs in float32 (half-precision inputs are cast on the way in
and y is cast back on the way out). The closed form that divides by
exp(cumsum(dt * A)) is avoided on purpose: that product underflows to zero within
a few hundred steps. Groups of B and C are handled by viewing the channels as
(G, D/G): B of shape (B, N, L) is simply the one-group case. B and C may be
grouped differently only if one of them has a single group.

The ``Scan`` itself (:func:`time_major_scan`) runs over axis 0 of time-major
sequences and its body reads nothing from the enclosing graph: the form that ONNX
Runtime, ``onnx.reference`` and OpenVINO all run (docs/deploy.md). The op's
(B, D, L) layout is transposed into it and back. A channels-last node (``layout`` 1)
gets its sequences transposed to channels first on the way in and y transposed back
on the way out; B, C or z read at an offset (``b_offset``, ``c_offset``, ``z_offset``)
are first cut to their window with a Slice.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import helper

from mamba_export.errors import InputShapeError
from mamba_export.ops import onnx_standard_conv, onnx_standard_norm
from mamba_export.ops.onnx_builder import FLOAT
from mamba_export.ops.onnx_builder import GraphBuilder as _Builder
from mamba_export.ops.selective_scan import (
    ALL_OFFSET_ATTRIBUTES,
    DELTA_OFFSET_ATTRIBUTE,
    DOMAIN,
    INPUT_NAMES,
    LAYOUT_CHANNELS_LAST,
    OFFSET_ATTRIBUTES,
    OP_TYPE,
    SOFTPLUS_THRESHOLD,
    TO_CHANNELS_FIRST,
    TO_CHANNELS_LAST,
    WHOLE,
    check_layout,
    check_offsets,
)


def _time_step(g: _Builder, delta: str, delta_bias: str, softplus: bool) -> str:
    """dt = softplus(delta + delta_bias) as the contract defines it (threshold 20), in float32."""
    dt = g.op("Cast", delta, to=FLOAT)
    if delta_bias:
        dt = g.op("Add", dt, g.op("Unsqueeze", delta_bias, g.ints(-1)))
    if softplus:
        # max(x, softplus(min(x, 20))) is x above the threshold (softplus(20) rounds to 20 in
        # float32) and softplus below it, and no runtime's softplus can overflow on it.
        capped = g.op("Min", dt, g.scalar(SOFTPLUS_THRESHOLD))
        dt = g.op("Max", dt, g.op("Softplus", capped))
    return dt


def _scan_body(prefix: str) -> onnx.GraphProto:
    """One step. State h: (B, G, D/G, N) and A: (G, D/G, N), carried unchanged. Per-step slices:
    dt, dt*u: (B, G, D/G, 1); B_t: (B, G, 1, N); C_t: (B, G, N, 1).
    A is a carried state rather than an outer-scope value because OpenVINO's Scan importer counts
    outer-scope values as body inputs and then finds the node short of inputs.
    y_t comes out of a MatMul (B, G, D/G, 1), much faster in ONNX Runtime than Mul + ReduceSum,
    and the outer product (dt*u) B_t is a MatMul with an inner size of 1 (faster than a
    broadcasting Mul)."""
    g = _Builder(prefix + "/step")
    names = {k: f"{prefix}/step/{k}" for k in ("h", "a", "dt", "dtu", "b", "c", "h_next", "a_next", "y")}
    decay = g.op("Exp", g.op("Mul", names["dt"], names["a"]))
    drive = g.op("MatMul", names["dtu"], names["b"])
    g.op("Add", g.op("Mul", decay, names["h"]), drive, out=names["h_next"])
    g.op("Identity", names["a"], out=names["a_next"])
    g.op("MatMul", names["h_next"], names["c"], out=names["y"])
    inputs = [helper.make_tensor_value_info(names[k], FLOAT, None) for k in ("h", "a", "dt", "dtu", "b", "c")]
    outputs = [helper.make_tensor_value_info(names[k], FLOAT, None) for k in ("h_next", "a_next", "y")]
    return helper.make_graph(g.nodes, f"{prefix}/step", inputs, outputs)


def time_major_scan(g: _Builder, h0: str, a_grouped: str, dt: str, dtu: str, b: str, c: str) -> tuple[str, str]:
    """The recurrence as one ``Scan`` over axis 0 of time-major float32 sequences.

    h0: (B, G, D/G, N); a_grouped: (G, D/G, N); dt and dt*u: (L, B, G, D/G, 1);
    b: (L, B, G, 1, N); c: (L, B, G, N, 1). Returns (h_last (B, G, D/G, N), y (L, B, G, D/G, 1)).
    Time-major on axis 0 is the one Scan form every runtime implements (onnx.reference
    refuses any other axis), so each layout transposes into it rather than scanning in place.
    """
    h_last, a_last, y_steps = g.fresh("h_last"), g.fresh("a_last"), g.fresh("y_steps")
    g.nodes.append(helper.make_node(
        "Scan", [h0, a_grouped, dt, dtu, b, c], [h_last, a_last, y_steps], name=g.fresh("Scan"),
        body=_scan_body(g.prefix), num_scan_inputs=4, scan_input_axes=[0, 0, 0, 0], scan_output_axes=[0]))
    return h_last, y_steps
def _windows(g: _Builder, given: dict, offsets: dict) -> None:
    """B, C, z read at an offset -> their (B, L, N) or (B, L, D) window (in ``given``, in place);
    N and D come from A's shape."""
    state = g.op("Shape", given["A"], start=1, end=2)
    widths = {"B": state, "C": state, "z": g.op("Shape", given["A"], start=0, end=1)}
    for name, attribute in OFFSET_ATTRIBUTES.items():
        offset = offsets[attribute]
        if offset == WHOLE or not given[name]:
            continue
        start = g.ints(offset)
        given[name] = g.op("Slice", given[name], start, g.op("Add", start, widths[name]), g.ints(2))


def _projected_delta(g: _Builder, given: dict, offsets: dict, channels_last: bool) -> None:
    """delta of the projected form -> the plain float32 (B, L, D) delta (in ``given``, in place):
    its R channels from delta_offset on times delta_weight transposed."""
    offset = offsets[DELTA_OFFSET_ATTRIBUTE]
    if not given["delta_weight"]:
        return
    if not channels_last or offset == WHOLE:
        raise InputShapeError(f"{OP_TYPE}: input delta_weight needs layout 1 and delta_offset >= 0")
    start = g.ints(offset)
    rank = g.op("Shape", given["delta_weight"], start=1, end=2)
    x_dt = g.op("Slice", given["delta"], start, g.op("Add", start, rank), g.ints(2))
    weight_t = g.op("Transpose", given["delta_weight"], perm=[1, 0])
    given["delta"] = g.op("MatMul", g.op("Cast", x_dt, to=FLOAT), weight_t)


def _channels_first(g: _Builder, given: dict) -> None:
    """Channels-last sequences and B, C -> channels first (in ``given``, in place)."""
    for name in ("u", "delta", "z"):
        if given[name]:
            given[name] = g.op("Transpose", given[name], perm=list(TO_CHANNELS_FIRST[3]))
    # B, C: (B, L, N) or (B, L, G, N), seen as (B, L, G, N) with G = 1 for the first form.
    state = g.op("Shape", given["A"], start=1, end=2)
    for name in ("B", "C"):
        as_groups = g.op("Reshape", given[name],
                         g.op("Concat", g.op("Shape", given[name], start=0, end=2), g.ints(-1), state, axis=0))
        given[name] = g.op("Transpose", as_groups, perm=list(TO_CHANNELS_FIRST[4]))


def _replacement(node: onnx.NodeProto, prefix: str) -> list[onnx.NodeProto]:
    given = dict(zip(INPUT_NAMES, list(node.input) + [""] * len(INPUT_NAMES), strict=False))
    attributes = {a.name: a.i for a in node.attribute}
    softplus = bool(attributes.get("delta_softplus", 0))
    layout = check_layout(attributes.get("layout", 0))
    channels_last = layout == LAYOUT_CHANNELS_LAST
    offsets = check_offsets({k: v for k, v in attributes.items() if k in ALL_OFFSET_ATTRIBUTES}, layout)
    g = _Builder(prefix)
    _windows(g, given, offsets)
    _projected_delta(g, given, offsets, channels_last)
    if channels_last:
        _channels_first(g, given)
    u, a = given["u"], given["A"]
    uf = g.op("Cast", u, to=FLOAT)
    dt = _time_step(g, given["delta"], given["delta_bias"], softplus)

    batch = g.op("Shape", u, start=0, end=1)
    dim = g.op("Shape", u, start=1, end=2)
    length = g.op("Shape", u, start=2, end=3)
    state = g.op("Shape", a, start=1, end=2)
    one, minus_one = g.ints(1), g.ints(-1)
    # B, C: (B, N, L) or (B, G, N, L) -> B as (B, G, 1, N, L) and C as (B, G, N, 1, L); G = 1
    # for the first form.
    b5 = g.op("Reshape", g.op("Cast", given["B"], to=FLOAT),
              g.op("Concat", batch, minus_one, one, state, length, axis=0))
    c5 = g.op("Reshape", g.op("Cast", given["C"], to=FLOAT),
              g.op("Concat", batch, minus_one, state, one, length, axis=0))
    # B and C may differ in grouping when one is ungrouped (G = 1 broadcasts); two different
    # group counts above 1 are not supported by this form.
    groups = g.op("Max", g.op("Shape", b5, start=1, end=2), g.op("Shape", c5, start=1, end=2))
    per_group = g.op("Div", dim, groups)
    # Sequences as (B, G, D/G, 1, L): each step's slice broadcasts against (B, G, 1, N).
    seq_shape = g.op("Concat", batch, groups, per_group, one, length, axis=0)
    dt5 = g.op("Reshape", dt, seq_shape)
    dtu5 = g.op("Reshape", g.op("Mul", dt, uf), seq_shape)
    a_grouped = g.op("Reshape", a, g.op("Concat", groups, per_group, state, axis=0))
    state_shape = g.op("Concat", batch, groups, per_group, state, axis=0)
    if given["initial_state"]:
        h0 = g.op("Reshape", given["initial_state"], state_shape)
    else:
        h0 = g.op("Expand", g.scalar(0.0), state_shape)

    # (B, G, D/G, 1, L) -> time-major (L, B, G, D/G, 1); likewise for B_t and C_t.
    time_first = [4, 0, 1, 2, 3]
    h_last, y_steps = time_major_scan(
        g, h0, a_grouped, g.op("Transpose", dt5, perm=time_first), g.op("Transpose", dtu5, perm=time_first),
        g.op("Transpose", b5, perm=time_first), g.op("Transpose", c5, perm=time_first))
    y_steps = g.op("Transpose", y_steps, perm=[1, 2, 3, 4, 0])  # back to (B, G, D/G, 1, L)

    y = g.op("Reshape", y_steps, g.op("Shape", u))  # (B, G, D/G, 1, L) -> (B, D, L)
    if given["D"]:
        y = g.op("Add", y, g.op("Mul", g.op("Unsqueeze", given["D"], g.ints(-1)), uf))
    if given["z"]:
        zf = g.op("Cast", given["z"], to=FLOAT)
        y = g.op("Mul", y, g.op("Mul", zf, g.op("Sigmoid", zf)))
    outputs = list(node.output) + [""] * (2 - len(node.output))
    if outputs[0] and channels_last:
        g.op("Transpose", g.op("CastLike", y, u), perm=list(TO_CHANNELS_LAST[3]), out=outputs[0])
    elif outputs[0]:
        g.op("CastLike", y, u, out=outputs[0])
    if outputs[1]:
        g.op("Reshape", h_last, g.op("Concat", batch, dim, state, axis=0), out=outputs[1])
    return g.nodes


def _is_selective_scan(node: onnx.NodeProto) -> bool:
    return node.domain == DOMAIN and node.op_type == OP_TYPE


def rewrite_model(model: onnx.ModelProto) -> int:
    """Replace every SelectiveScan, CausalConv1d and ResidualRMSNorm node of ``model`` (in place);
    returns how many were replaced."""
    graph = model.graph
    widths = onnx_standard_conv.static_widths(model)
    new_nodes, replaced = [], 0
    for node in graph.node:
        if _is_selective_scan(node):
            prefix = f"{node.name or 'selective_scan'}/standard{replaced}"
            new_nodes.extend(_replacement(node, prefix))
            replaced += 1
        elif onnx_standard_conv.is_causal_conv(node):
            prefix = f"{node.name or 'causal_conv1d'}/standard{replaced}"
            new_nodes.extend(onnx_standard_conv.replacement(node, prefix, widths))
            replaced += 1
        elif onnx_standard_norm.is_residual_norm(node):
            prefix = f"{node.name or 'residual_rms_norm'}/standard{replaced}"
            new_nodes.extend(onnx_standard_norm.replacement(node, prefix))
            replaced += 1
        else:
            new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    if not any(n.domain == DOMAIN for n in graph.node):
        kept = [o for o in model.opset_import if o.domain != DOMAIN]
        del model.opset_import[:]
        model.opset_import.extend(kept)
    return replaced


def rewrite_file(path) -> int:
    """Rewrite an ONNX file in place; external weight files are left untouched."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    replaced = rewrite_model(model)
    onnx.save(model, str(path))
    return replaced
