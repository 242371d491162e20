"""``--linear-op``: the constant-weight MatMuls of a written graph as our Linear op, and the record.

On a GPU a decode step's products are matrix-vector products, and the Linear op
(:mod:`mamba_export.ops.linear`, ``docs/linear_op.md``) computes them with kernels of our
own instead of cuBLAS's. The exporter traces every projection as an ONNX ``MatMul``; this
pass rewrites a saved graph's MatMuls with a constant 2-D float weight (found as the
int4 pass finds them, :mod:`mamba_export.export.matmul_forms`) into ``Linear(x, weight)``
with the weight stored (N, K), as ``torch.nn.Linear`` keeps it:

    x @ W               Linear(x, W^T): a transposed (N, K) copy of W, which replaces W
                        unless another node reads W too
    x @ Transpose(W)    Linear(x, W): the weight as stored, the Transpose dropped (a tied LM
                        head reads the embedding table the Gather reads, no copy)
    W @ x               stays a MatMul (Linear multiplies by the weight transposed on the right)

The exporter writes the projections as ``x @ W`` with W a (K, N) constant of their own, so
each becomes its (N, K) transpose, no larger. A tied head is ``x @ Transpose(table)``, but
where the exporter folded that Transpose into a constant (a small table), the transposed
copy equals the embedding table: the Linear then reads the table itself. Every MatMul left as it
was is listed in the record with the reason, which ``export_info.json`` keeps as
``linear_products``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mamba_export.export.matmul_forms import (
    NO_CONSTANT,
    Form,
    Graph,
    drop_unused,
    inferred_graph,
    kind,
    layer_counts,
    match,
    save_in_place,
    source,
)
from mamba_export.ops import linear as contract

__all__ = ["FLOAT_TYPES", "WEIGHT_IS_LEFT", "rewrite_file", "rewrite_model"]

# The contract's dtypes (contract.IO_DTYPES) as ONNX element types.
FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16)
WEIGHT_IS_LEFT = "the weight is the left operand (W @ x); Linear multiplies by it on the right"
# Nodes whose first input is a table a transposed weight may equal (the tied LM head's).
TABLE_READERS = ("Gather",)

# How a Linear's weight was obtained, as the record says it.
AS_STORED = "as stored"
TRANSPOSED_COPY = "transposed copy"
SHARED_TABLE = "the gathered table"


@dataclass
class _Weights:
    """The (N, K) weights made so far, so that one constant is transposed once."""

    g: Graph
    tables: list
    names: set
    transposed: dict = field(default_factory=dict)  # constant -> (name, how)

    def for_form(self, form: Form, module: str) -> tuple[str, str]:
        """The name of the (N, K) initializer the Linear reads, and how it came to be."""
        if form.form == "x @ W^T":
            return form.constant, AS_STORED
        if form.constant not in self.transposed:
            self.transposed[form.constant] = self._transpose(form, module)
        return self.transposed[form.constant]

    def _transpose(self, form: Form, module: str) -> tuple[str, str]:
        weight = np.ascontiguousarray(form.weight.T)  # (N, K)
        data_type = self.g.initializers[form.constant].data_type
        for table in self.tables:
            init = self.g.initializers[table]
            if (tuple(init.dims) == weight.shape and init.data_type == data_type
                    and np.array_equal(numpy_helper.to_array(init), weight)):
                return table, SHARED_TABLE
        name, suffix = f"{module}.linear_weight", 1
        while name in self.names:
            suffix += 1
            name = f"{module}.linear_weight_{suffix}"
        self.names.add(name)
        self.g.graph.initializer.append(numpy_helper.from_array(weight, name))
        return name, TRANSPOSED_COPY


def _tables(g: Graph) -> list:
    return sorted({node.input[0] for node in g.graph.node
                   if node.op_type in TABLE_READERS and g.is_weight(node.input[0])})


def _names(graph: onnx.GraphProto) -> set:
    return ({init.name for init in graph.initializer} | {info.name for info in graph.input}
            | {out for node in graph.node for out in node.output})


def _initializer_bytes(graph: onnx.GraphProto) -> int:
    return sum(int(np.prod(init.dims, dtype=np.int64)) * helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
               for init in graph.initializer)


def rewrite_model(model: onnx.ModelProto) -> dict:
    """Rewrite ``model`` in place; returns the record for export_info.json's ``linear_products``
    (``added_bytes``: what the weights grew by, the copies kept beside an original another node reads)."""
    bytes_before = _initializer_bytes(model.graph)
    g = inferred_graph(model, FLOAT_TYPES)
    weights = _Weights(g, _tables(g), _names(model.graph))
    new_nodes, rewritten, kept = [], [], []
    for node in model.graph.node:
        form = match(g, node) if node.op_type == "MatMul" else None
        if node.op_type != "MatMul":
            new_nodes.append(node)
            continue
        if form is None or form.form == "W @ x":
            kept.append({"node": node.name, "reason": NO_CONSTANT if form is None else WEIGHT_IS_LEFT})
            new_nodes.append(node)
            continue
        module = source(node, form.constant)
        weight, how = weights.for_form(form, module)
        linear = helper.make_node(contract.OP_TYPE, [form.activation, weight], [node.output[0]], name=node.name,
                                  domain=contract.DOMAIN)
        linear.metadata_props.extend(node.metadata_props)
        new_nodes.append(linear)
        inner, outer = form.weight.shape
        rewritten.append({"node": node.name, "source": module, "kind": kind(module), "form": form.form,
                          "weight": weight, "weight_from": how, "K": int(inner), "N": int(outer)})
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    drop_unused(model.graph)
    if rewritten and not any(op.domain == contract.DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(contract.DOMAIN, contract.OP_VERSION))
    return {
        "op": f"{contract.DOMAIN}.{contract.OP_TYPE}", "op_version": contract.OP_VERSION,
        "layers": layer_counts(rewritten),
        "added_bytes": _initializer_bytes(model.graph) - bytes_before,
        "rewritten": rewritten, "kept_matmul": kept,
    }


def rewrite_file(model_path: Path, external_data: str | None) -> dict:
    """Rewrite the graph at ``model_path`` in place (its weights in ``external_data`` if named)."""
    model_path = Path(model_path)
    model = onnx.load(model_path)
    record = rewrite_model(model)
    save_in_place(model, model_path, external_data)
    return record
