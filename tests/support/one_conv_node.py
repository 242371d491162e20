"""One-node ONNX models around CausalConv1d, for tests of the custom op.

The graph inputs carry the contract's names (x, weight, bias, conv_state, mask), so
any error the runtime raises about an input names it the way the contract does.
Dimensions are symbolic (batch, length, channels, width, state_width) so one model
serves every size, or left out entirely (``shaped=False``) so malformed tensors
reach the kernel's own checks instead of ONNX Runtime's input validation.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from mamba_export.ops.causal_conv import DOMAIN, INPUTS, OP_TYPE, OP_VERSION, OUTPUTS
from tests.support.one_node import IR_VERSION, ONNX_DTYPES, OPSET

DTYPES = ONNX_DTYPES | {"int32": TensorProto.INT32}
OPTIONAL_INPUTS = tuple(spec.name for spec in INPUTS if not spec.required)
REQUIRED_INPUTS = tuple(spec.name for spec in INPUTS if spec.required)
SYMBOLIC_SHAPES = {
    "x": ["batch", "length", "channels"],
    "weight": ["channels", "width"],
    "bias": ["channels"],
    "conv_state": ["batch", "channels", "state_width"],
    "mask": ["batch", "length"],
    "y": ["batch", "length", "channels"],
    "new_conv_state": ["batch", "channels", "state_width"],
}


def io_dtypes(io_dtype: str) -> dict:
    """The dtype of every input and output for the I/O dtype T."""
    return {spec.name: (io_dtype if spec.dtype == "T" else spec.dtype) for spec in INPUTS + OUTPUTS}


def causal_conv_model(io_dtype: str = "float32", present=OPTIONAL_INPUTS, activation: int | None = 0,
                      dtypes: dict | None = None, shaped: bool = True,
                      required=REQUIRED_INPUTS, x_offset: int | None = None) -> onnx.ModelProto:
    """A model whose only node is CausalConv1d.

    present: the optional inputs the node receives; absent ones become "" (or are
    dropped when trailing). activation: the attribute value, or None to leave it out.
    dtypes: overrides of the declared dtype per tensor name (for wrong-dtype tests).
    required: the required inputs wired to the node (drop one to test its absence).
    x_offset: the attribute value, or None to leave it out; when set, x is declared
    (batch, length, packed_x).
    """
    declared = io_dtypes(io_dtype) | (dtypes or {})
    names = [spec.name for spec in INPUTS]
    node_inputs = [name if (name in required or name in present) else "" for name in names]
    while node_inputs and node_inputs[-1] == "":
        node_inputs.pop()
    attributes = {} if activation is None else {"activation": activation}
    if x_offset is not None:
        attributes["x_offset"] = x_offset
    outputs = [spec.name for spec in OUTPUTS]
    node = helper.make_node(OP_TYPE, node_inputs, outputs, domain=DOMAIN, **attributes)

    def value_info(name):
        shape = SYMBOLIC_SHAPES[name] if shaped else None
        if shaped and name == "x" and x_offset is not None:
            shape = ["batch", "length", "packed_x"]
        return helper.make_tensor_value_info(name, DTYPES[declared[name]], shape)

    graph = helper.make_graph([node], "causal_conv1d", [value_info(n) for n in node_inputs if n],
                              [value_info(n) for n in outputs])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, OP_VERSION)])
    model.ir_version = IR_VERSION
    return model
