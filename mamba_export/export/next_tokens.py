"""The graph's greedy choice as an output of its own: ``next_tokens`` (``--next-tokens``).

Greedy decoding on CUDA takes the argmax of each step's logits next to them. Without this
output a second session (``runtime/token_head.py``) does it after every decode step: one
more ONNX Runtime call, its launches and its synchronisation per token, outside the step's
CUDA graph. With it, the decode step's graph ends with the argmax itself, and the runtime
binds ``next_tokens`` straight to the buffer the next step reads as ``input_ids``.

An export that uses our custom ops (the custom backend, which loads the op library anyway) writes
one ``LastArgMax`` node (``mamba_export/ops/last_argmax.py``, ``docs/last_argmax_op.md``): it
reads the last position's logits where they lie, compares them in float32 and writes the tokens,
one kernel per step. The standard backend (ONNX ops only, no library) writes ONNX's nodes,
:func:`add_onnx_nodes`, which give the same tokens (``scripts/onnx_next_tokens.py`` rewrites an
export's graph to them, to time both forms).

ONNX's nodes read the head output that the graph already has: the last position's logits
(``Gather`` at index -1 of the sequence axis; none where the head keeps one position,
``--logits last``: the ArgMax then drops that axis itself), widened to float32 (exactly,
as NumPy would; no ``Cast`` for a float32 graph), then ``ArgMax`` over the vocabulary,
giving a (batch, 1) int64 result with the first index on ties (ONNX's rule; ONNX
Runtime's CUDA kernel does not promise an order, which matters only for exactly equal
logits). The output comes after the presents, so that positional readers of
``(head, presents...)`` see no change.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from mamba_export import graph_io
from mamba_export.ops import last_argmax as argmax_contract

PREFIX = "next_tokens/"


def add_to_model(model: onnx.ModelProto, head_output: str = graph_io.LOGITS, custom_op: bool = False) -> None:
    """Append the nodes and the ``next_tokens`` output to ``model`` in place: one LastArgMax node
    when ``custom_op`` (the graph then needs our op library), else ONNX's nodes."""
    graph = model.graph
    outputs = {output.name: output for output in graph.output}
    if head_output not in outputs:
        raise ValueError(f"the graph has no {head_output!r} output to take the next tokens from")
    if graph_io.NEXT_TOKENS in outputs:
        raise ValueError(f"the graph already has a {graph_io.NEXT_TOKENS!r} output")
    if custom_op:
        add_custom_node(model, head_output)
    else:
        add_onnx_nodes(model, head_output, outputs[head_output])
    graph.output.append(helper.make_tensor_value_info(graph_io.NEXT_TOKENS, TensorProto.INT64,
                                                       list(graph_io.NEXT_TOKENS_SHAPE)))


def add_custom_node(model: onnx.ModelProto, head_output: str) -> None:
    """``next_tokens`` as one LastArgMax node on the head output (any number of positions), with
    the op's domain imported."""
    model.graph.node.append(helper.make_node(argmax_contract.OP_TYPE, [head_output], [graph_io.NEXT_TOKENS],
                                             domain=argmax_contract.DOMAIN, name=PREFIX + argmax_contract.OP_TYPE))
    if not any(opset.domain == argmax_contract.DOMAIN for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid(argmax_contract.DOMAIN, argmax_contract.OP_VERSION))


def add_onnx_nodes(model: onnx.ModelProto, head_output: str, output: onnx.ValueInfoProto) -> None:
    """``next_tokens`` from ONNX's nodes: Gather of the last position (none for a head of one
    position), Cast to float32 (none for float32 logits), ArgMax. ``output`` describes the head output."""
    graph = model.graph
    element = output.type.tensor_type.elem_type
    if _one_position(output):
        # (batch, 1, vocab): the ArgMax over the last axis without keeping it is (batch, 1) already.
        last, axis, keepdims = head_output, 2, 0
    else:
        index, last, axis, keepdims = PREFIX + "last_index", PREFIX + "last", 1, 1
        graph.initializer.append(helper.make_tensor(index, TensorProto.INT64, [], [-1]))
        graph.node.append(helper.make_node("Gather", [head_output, index], [last], axis=1, name=PREFIX + "Gather"))
    widened = PREFIX + "last_float" if element != TensorProto.FLOAT else last
    if widened != last:
        graph.node.append(helper.make_node("Cast", [last], [widened], to=TensorProto.FLOAT, name=PREFIX + "Cast"))
    graph.node.append(helper.make_node("ArgMax", [widened], [graph_io.NEXT_TOKENS], axis=axis, keepdims=keepdims,
                                       select_last_index=0, name=PREFIX + "ArgMax"))


def _one_position(output: onnx.ValueInfoProto) -> bool:
    """Whether the head output is (batch, 1, vocab): one position, fixed in the graph."""
    dims = output.type.tensor_type.shape.dim
    return len(dims) == 3 and dims[1].HasField("dim_value") and dims[1].dim_value == 1


def add_to_file(model_path: Path, head_output: str = graph_io.LOGITS, custom_op: bool = False) -> None:
    """:func:`add_to_model` on the graph at ``model_path``, in place. Weights kept in an external data
    file stay there untouched: only the graph's own file is read and written."""
    model_path = Path(model_path)
    model = onnx.load(model_path, load_external_data=False)
    add_to_model(model, head_output, custom_op)
    onnx.save(model, model_path)
