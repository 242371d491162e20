"""A small helper that appends ONNX nodes with fresh, prefixed value names.

Shared by the standard-ops forms of our ops (``onnx_standard``, ``onnx_standard_conv``),
so each replacement is written as a short list of op calls whose internal names can
never collide with the graph's or with another replacement's.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

FLOAT = TensorProto.FLOAT


class GraphBuilder:
    """Appends nodes with fresh, prefixed value names."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}/{hint}_{self._count}"

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        output = out or self.fresh(op_type.lower())
        node = helper.make_node(op_type, list(inputs), [output], name=self.fresh(op_type), **attrs)
        self.nodes.append(node)
        return output

    def ints(self, *values: int) -> str:
        tensor = helper.make_tensor(self.fresh("const"), TensorProto.INT64, [len(values)], list(values))
        return self.op("Constant", value=tensor)

    def scalar(self, value: float) -> str:
        return self.op("Constant", value=helper.make_tensor(self.fresh("const"), FLOAT, [], [value]))
