"""One-node ONNX models around LastArgMax, for tests and benchmarks of the custom op.

The graph input carries the contract's name (logits), so any error the runtime raises
about it names it the way the contract does. logits is declared (batch, positions, vocab)
with symbolic dimensions, or without a shape (``shaped=False``) so malformed tensors reach
the kernel's own checks instead of ONNX Runtime's input validation.
"""

from __future__ import annotations

import onnx
from onnx import helper

from mamba_export.ops.last_argmax import DOMAIN, INPUTS, OP_TYPE, OP_VERSION, OUTPUTS
from tests.support.one_conv_node import DTYPES
from tests.support.one_node import IR_VERSION, OPSET


def last_argmax_model(io_dtype: str = "float32", shaped: bool = True) -> onnx.ModelProto:
    """A model whose only node is LastArgMax on logits of ``io_dtype`` (any dtype name of DTYPES)."""
    (logits,), (tokens,) = INPUTS, OUTPUTS
    node = helper.make_node(OP_TYPE, [logits.name], [tokens.name], domain=DOMAIN)
    graph = helper.make_graph(
        [node], "last_argmax",
        [helper.make_tensor_value_info(logits.name, DTYPES[io_dtype],
                                       ["batch", "positions", "vocab"] if shaped else None)],
        [helper.make_tensor_value_info(tokens.name, DTYPES["int64"], ["batch", 1] if shaped else None)])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, OP_VERSION)])
    model.ir_version = IR_VERSION
    return model
