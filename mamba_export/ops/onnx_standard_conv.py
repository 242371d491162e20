"""The standard-ops form of CausalConv1d, for the ``standard`` backend.

:func:`replacement` turns one ``CausalConv1d`` node into standard ONNX ops with the
node's input and output names, so the graph I/O does not change
(``onnx_standard.rewrite_model`` calls it for every such node). With x as
(B, L, C) and everything in float32::

    xm     = Where(mask != 0, x, 0)                    a select: inf/NaN under the mask stay out
    x      = Slice(x, x_offset, x_offset + C) on channels      only when x_offset >= 0 (a packed input)
    window = Concat(Transpose(conv_state), xm)         (B, K-1+L, C), oldest first
    v      = Sum_k Slice(window, k, k+L) * weight[:, k] (+ bias), SiLU as v * Sigmoid(v)
    y      = Where(mask != 0, v, 0)                    new_conv_state = the window's last K-1 rows

K shifted Slices, Muls and one Sum rather than a ``Conv``: on CUDA, ONNX Runtime runs
``Conv`` through cuDNN, which searches for an algorithm at every new shape (seconds
per new prompt length); element-wise ops have no such search. The form needs K
statically, so the weight must be an initializer or have a static shape, as it does
in every export.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from mamba_export.errors import UnsupportedModelError
from mamba_export.ops.causal_conv import DOMAIN, INPUT_NAMES, OP_TYPE, WHOLE, check_x_offset
from mamba_export.ops.onnx_builder import FLOAT, GraphBuilder

_TO_END = 2**63 - 1  # a Slice end past any length


def is_causal_conv(node: onnx.NodeProto) -> bool:
    return node.domain == DOMAIN and node.op_type == OP_TYPE


def static_widths(model: onnx.ModelProto) -> dict:
    """name -> K for every rank-2 tensor of the graph whose second dimension is known statically
    (initializers, Constant nodes, and inputs or values with a static shape)."""
    widths = {}
    graph = model.graph
    for value in list(graph.input) + list(graph.value_info):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 2 and dims[1].HasField("dim_value"):
            widths[value.name] = dims[1].dim_value
    for tensor in graph.initializer:
        if len(tensor.dims) == 2:
            widths[tensor.name] = tensor.dims[1]
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            dims = node.attribute[0].t.dims
            if len(dims) == 2:
                widths[node.output[0]] = dims[1]
    return widths


def _int64(g: GraphBuilder, value: int) -> str:
    return g.op("Constant", value=numpy_helper.from_array(np.array(value, dtype=np.int64), g.fresh("const")))


def _window(g: GraphBuilder, x: str, xm: str, conv_state: str, columns: int) -> str:
    """[conv_state, masked x] along time: (B, K-1+L, C) float32 (zeros for an absent state)."""
    if columns == 0:
        return xm
    if conv_state:
        state = g.op("Transpose", g.op("Cast", conv_state, to=FLOAT), perm=[0, 2, 1])
    else:
        shape = g.op("Concat", g.op("Shape", x, start=0, end=1), g.ints(columns),
                     g.op("Shape", x, start=2, end=3), axis=0)
        state = g.op("Expand", g.scalar(0.0), shape)
    return g.op("Concat", state, xm, axis=1)


def replacement(node: onnx.NodeProto, prefix: str, widths: dict) -> list[onnx.NodeProto]:
    """The standard nodes computing ``node``; ``widths`` is :func:`static_widths` of its model."""
    given = dict(zip(INPUT_NAMES, list(node.input) + [""] * len(INPUT_NAMES), strict=False))
    weight = given["weight"]
    if weight not in widths:
        raise UnsupportedModelError(
            f"{OP_TYPE} node {node.name!r}: the standard form needs the kernel width K of weight {weight!r} "
            "statically; make the weight an initializer or give it a static shape")
    width = widths[weight]
    silu = any(a.name == "activation" and a.i == 1 for a in node.attribute)
    x_offset = check_x_offset(next((a.i for a in node.attribute if a.name == "x_offset"), WHOLE))
    g = GraphBuilder(prefix)
    x = given["x"]
    if x_offset != WHOLE:
        start = g.ints(x_offset)
        x = g.op("Slice", x, start, g.op("Add", start, g.op("Shape", weight, start=0, end=1)), g.ints(2))
    xm = g.op("Cast", x, to=FLOAT)
    keep = None
    if given["mask"]:
        keep = g.op("Unsqueeze", g.op("Not", g.op("Equal", given["mask"], _int64(g, 0))), g.ints(-1))
        xm = g.op("Where", keep, xm, g.scalar(0.0))
    columns = width - 1
    window = _window(g, x, xm, given["conv_state"], columns)
    terms = []
    for k in range(width):
        tap = g.op("Slice", window, g.ints(k), g.ints(k - columns if k < columns else _TO_END), g.ints(1))
        terms.append(g.op("Mul", tap, g.op("Gather", weight, _int64(g, k), axis=1)))
    v = terms[0] if width == 1 else g.op("Sum", *terms)
    if given["bias"]:
        v = g.op("Add", v, given["bias"])
    if silu:
        v = g.op("Mul", v, g.op("Sigmoid", v))
    if keep is not None:
        v = g.op("Where", keep, v, g.scalar(0.0))
    outputs = list(node.output) + [""] * (2 - len(node.output))
    if outputs[0]:
        g.op("CastLike", v, x, out=outputs[0])
    if outputs[1]:
        tail = g.op("Slice", window, g.op("Shape", x, start=1, end=2), g.ints(_TO_END), g.ints(1))
        g.op("CastLike", g.op("Transpose", tail, perm=[0, 2, 1]), x, out=outputs[1])
    return g.nodes
