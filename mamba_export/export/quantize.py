"""``--quantize int4``: weight-only 4-bit MatMuls in a written graph, and the record of what changed.

The pass owns its dtype plan instead of running a generic converter: it rewrites only
``MatMul`` nodes with a constant 2-D float weight into ``com.microsoft.MatMulNBits``
(layout in :mod:`mamba_export.ops.int4`), and leaves every other tensor as exported:
activations and outputs in the export dtype, the SSM state float32, the embedding
table float (a ``Gather`` needs the whole table). In a Mamba graph these MatMuls are
``in_proj``, ``x_proj``, ``dt_proj``, ``out_proj`` and the LM head, whatever their form:

    x @ W               the weight is B: replaced in place
    x @ Transpose(W)    a 2-D transpose of a constant: the constant is transposed here
    W @ x               the weight is A: computed as (x^T @ W^T)^T with two Transposes
                        (one of them cancels when x is itself a transpose, as in dt_proj)

A weight that another node also reads (the LM head tied to the embeddings) keeps its
float copy for that node; the MatMul gets its own 4-bit one. Any other MatMul stays
float and is listed in the record with the reason. Finding these forms is shared with the
``--linear-op`` pass (:mod:`mamba_export.export.matmul_forms`).
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import helper, numpy_helper

from mamba_export.export.matmul_forms import (
    LAYER_KINDS,
    NO_CONSTANT,
    Form,
    drop_unused,
    inferred_graph,
    kind,
    layer_counts,
    match,
    save_in_place,
    source,
    swap_last_two,
)
from mamba_export.ops import int4
from mamba_export.ops.ort_norm_nodes import MS_DOMAIN

__all__ = ["LAYER_KINDS", "MS_DOMAIN", "OP_TYPE", "quantize_file", "quantize_model"]

OP_TYPE = int4.OP_TYPE


def _rewrite(g, node, plan: Form, block_size: int, accuracy_level: int) -> tuple[list, dict]:
    """The nodes replacing ``node`` and its record; adds the 4-bit initializers."""
    packed = int4.quantize(plan.weight, block_size)
    activation = plan.activation
    prefix = f"{node.name or node.output[0]}.int4"
    for suffix, array in (("B", packed.packed), ("scales", packed.scales), ("zero_points", packed.zero_points)):
        g.graph.initializer.append(numpy_helper.from_array(array, f"{prefix}.{suffix}"))
    nodes, out = [], node.output[0]
    if plan.form == "W @ x":
        if plan.transpose_input:
            nodes.append(helper.make_node("Transpose", [activation], [f"{prefix}.x_t"], name=f"{prefix}.in",
                                          perm=swap_last_two(plan.rank)))
            activation = f"{prefix}.x_t"
        out = f"{prefix}.y_t"
    matmul = helper.make_node(OP_TYPE, [activation, f"{prefix}.B", f"{prefix}.scales", f"{prefix}.zero_points"],
                              [out], name=f"{prefix}.matmul", domain=MS_DOMAIN, K=packed.k, N=packed.n,
                              bits=int4.BITS, block_size=block_size, accuracy_level=accuracy_level)
    matmul.metadata_props.extend(node.metadata_props)
    nodes.append(matmul)
    if plan.form == "W @ x":
        nodes.append(helper.make_node("Transpose", [out], [node.output[0]], name=f"{prefix}.out",
                                      perm=swap_last_two(plan.rank)))
    module = source(node, plan.constant)
    record = {"node": node.name, "weights": prefix, "source": module, "kind": kind(module), "form": plan.form,
              "K": packed.k, "N": packed.n, "float_bytes": int(plan.weight.nbytes), "int4_bytes": int(packed.nbytes)}
    return nodes, record


def quantize_model(model: onnx.ModelProto, block_size: int, accuracy_level: int) -> dict:
    """Rewrite ``model`` in place; returns the record for export_info.json's ``quantization``."""
    g = inferred_graph(model)
    new_nodes, quantized, kept = [], [], []
    for node in model.graph.node:
        plan = match(g, node) if node.op_type == "MatMul" else None
        if node.op_type == "MatMul" and plan is None:
            kept.append({"node": node.name, "reason": NO_CONSTANT})
        if plan is None:
            new_nodes.append(node)
            continue
        nodes, record = _rewrite(g, node, plan, block_size, accuracy_level)
        new_nodes += nodes
        quantized.append(record)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    drop_unused(model.graph)
    if not any(op.domain == MS_DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return {
        "method": "int4", "op": f"{MS_DOMAIN}.{OP_TYPE}", "bits": int4.BITS, "block_size": block_size,
        "accuracy_level": accuracy_level, "symmetric": False,
        "layers": layer_counts(quantized),
        "float_bytes": sum(r["float_bytes"] for r in quantized),
        "int4_bytes": sum(r["int4_bytes"] for r in quantized),
        "quantized": quantized, "kept_float": kept,
    }


def quantize_file(path: Path, block_size: int, accuracy_level: int, external_data: str | None) -> dict:
    """Quantize the graph at ``path`` in place (its weights in ``external_data`` if named)."""
    path = Path(path)
    model = onnx.load(path)
    record = quantize_model(model, block_size, accuracy_level)
    save_in_place(model, path, external_data)
    return record
