"""One-node ONNX models around ResidualRMSNorm, for tests of the custom op.

The graph inputs carry the contract's names (x, weight, residual), so any error the
runtime raises about an input names it the way the contract does. x is declared with
symbolic dimensions of the given rank (``rows_0``, ..., ``hidden``), or without a
shape (``shaped=False``) so malformed tensors reach the kernel's own checks instead of
ONNX Runtime's input validation.
"""

from __future__ import annotations

import onnx
from onnx import helper

from mamba_export.ops.residual_norm import DOMAIN, INPUTS, OP_TYPE, OP_VERSION, OUTPUTS
from tests.support.one_conv_node import DTYPES
from tests.support.one_node import IR_VERSION, OPSET


def io_dtypes(io_dtype: str) -> dict:
    """The dtype of every input and output for the I/O dtype T."""
    return {spec.name: (io_dtype if spec.dtype == "T" else spec.dtype) for spec in INPUTS + OUTPUTS}


def residual_norm_model(io_dtype: str = "float32", residual: bool = True, epsilon: float | None = 1e-5,
                        rank: int = 3, dtypes: dict | None = None, shaped: bool = True,
                        required=("x", "weight")) -> onnx.ModelProto:
    """A model whose only node is ResidualRMSNorm.

    residual: whether the node receives the optional residual. epsilon: the attribute value,
    or None to leave it out. dtypes: overrides of the declared dtype per tensor name.
    required: the required inputs wired to the node (drop one to test its absence).
    """
    declared = io_dtypes(io_dtype) | (dtypes or {})
    node_inputs = [spec.name if (spec.name in required or (residual and spec.name == "residual")) else ""
                   for spec in INPUTS]
    while node_inputs and node_inputs[-1] == "":
        node_inputs.pop()
    attributes = {} if epsilon is None else {"epsilon": epsilon}
    outputs = [spec.name for spec in OUTPUTS]
    node = helper.make_node(OP_TYPE, node_inputs, outputs, domain=DOMAIN, **attributes)
    full = [f"rows_{i}" for i in range(rank - 1)] + ["hidden"]

    def value_info(name):
        shape = (["hidden"] if name == "weight" else full) if shaped else None
        return helper.make_tensor_value_info(name, DTYPES[declared[name]], shape)

    graph = helper.make_graph([node], "residual_rms_norm", [value_info(n) for n in node_inputs if n],
                              [value_info(n) for n in outputs])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, OP_VERSION)])
    model.ir_version = IR_VERSION
    return model
