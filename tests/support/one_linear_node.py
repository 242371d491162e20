"""One-node ONNX models around Linear, for tests of the custom op.

The graph's tensors carry the contract's names (x, weight, y), so any error the runtime
raises about an input names it the way the contract does. The weight is a graph input, or
an initializer (``weight=array``: a constant, as the export writes it, which the CUDA kernel
reads before waiting for the kernel ahead of it). x is declared with symbolic dimensions of
the given rank, or without a shape (``shaped=False``) so malformed tensors reach the kernel's
own checks instead of ONNX Runtime's input validation.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from mamba_export.ops.linear import DOMAIN, OP_TYPE, OP_VERSION
from tests.support.one_conv_node import DTYPES
from tests.support.one_node import IR_VERSION, OPSET


def linear_model(io_dtype: str = "float32", rank: int = 2, weight: np.ndarray | None = None,
                 dtypes: dict | None = None, shaped: bool = True) -> onnx.ModelProto:
    """A model whose only node is Linear. weight: an initializer's value (its dtype is the one
    declared), or None for a graph input named weight. dtypes: declared dtype per tensor name."""
    declared = {"x": io_dtype, "weight": io_dtype, "y": io_dtype} | (dtypes or {})
    node = helper.make_node(OP_TYPE, ["x", "weight"], ["y"], domain=DOMAIN)
    rows = [f"rows_{i}" for i in range(rank - 1)]

    def value_info(name, shape):
        return helper.make_tensor_value_info(name, DTYPES[declared[name]], shape if shaped else None)

    inputs = [value_info("x", rows + ["inner"])]
    initializers = []
    if weight is None:
        inputs.append(value_info("weight", ["outer", "inner"]))
    else:
        initializers.append(_initializer(weight, declared["weight"]))
    graph = helper.make_graph([node], "linear", inputs, [value_info("y", rows + ["outer"])], initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, OP_VERSION)])
    model.ir_version = IR_VERSION
    return model


def _initializer(value: np.ndarray, dtype: str) -> onnx.TensorProto:
    if dtype == "bfloat16":  # numpy_helper cannot write ml_dtypes' bfloat16: its bits, as the proto wants
        tensor = helper.make_tensor("weight", DTYPES["bfloat16"], value.shape,
                                    np.asarray(value).view(np.uint16).tobytes(), raw=True)
        return tensor
    return numpy_helper.from_array(np.asarray(value), "weight")
