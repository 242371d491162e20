"""The standard-ops form of ResidualRMSNorm, for runtimes without our library.

:func:`replacement` turns one ``ResidualRMSNorm`` node into standard ONNX ops (opset
18 or newer: ReduceMean takes its axes as an input) with the node's input and output
names, so the graph I/O does not change (``onnx_standard.rewrite_model`` calls it for
every such node). In float32, as the contract says::

    s            = Cast(x, float) (+ residual)
    inv          = Reciprocal(Sqrt(ReduceMean(s * s, axis -1) + epsilon))
    y            = CastLike(Cast(weight, float) * (s * inv), x)
    residual_out = s

The exporter's standard backend never writes the node (its graphs norm with plain ops);
this form lets any graph that holds one run on any ONNX runtime.
"""

from __future__ import annotations

import onnx

from mamba_export.ops.onnx_builder import FLOAT, GraphBuilder
from mamba_export.ops.residual_norm import ATTRIBUTES, DOMAIN, INPUT_NAMES, OP_TYPE


def is_residual_norm(node: onnx.NodeProto) -> bool:
    return node.domain == DOMAIN and node.op_type == OP_TYPE


def replacement(node: onnx.NodeProto, prefix: str) -> list[onnx.NodeProto]:
    """The standard nodes computing ``node``."""
    given = dict(zip(INPUT_NAMES, list(node.input) + [""] * len(INPUT_NAMES), strict=False))
    epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), ATTRIBUTES["epsilon"][1])
    outputs = list(node.output) + [""] * (2 - len(node.output))
    g = GraphBuilder(prefix)
    x = given["x"]
    s = g.op("Cast", x, to=FLOAT)
    if given["residual"]:
        s = g.op("Add", s, given["residual"])
    if outputs[1]:
        s = g.op("Identity", s, out=outputs[1])
    mean = g.op("ReduceMean", g.op("Mul", s, s), g.ints(-1), keepdims=1)
    inv = g.op("Reciprocal", g.op("Sqrt", g.op("Add", mean, g.scalar(float(epsilon)))))
    y = g.op("Mul", g.op("Cast", given["weight"], to=FLOAT), g.op("Mul", s, inv))
    if outputs[0]:
        g.op("CastLike", y, x, out=outputs[0])
    return g.nodes
