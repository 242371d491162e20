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
float and is listed in the record with the reason.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mamba_export.export.mixer import PADDED_DT_WEIGHT_ATTR
from mamba_export.ops import int4
from mamba_export.ops.ort_norm_nodes import MS_DOMAIN

OP_TYPE = int4.OP_TYPE
FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16)
# The layer names of a Mamba block and its head, as the record counts them.
LAYER_KINDS = ("in_proj", "x_proj", "dt_proj", "out_proj", "lm_head")


class _Graph:
    """Lookups over one graph while it is rewritten."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.initializers = {init.name: init for init in graph.initializer}
        self.producers = {out: node for node in graph.node for out in node.output}
        self.ranks = {info.name: len(info.type.tensor_type.shape.dim)
                      for info in [*graph.value_info, *graph.input, *graph.output]
                      if info.type.tensor_type.HasField("shape")}

    def weight(self, name: str) -> np.ndarray | None:
        """The 2-D float constant called ``name``, or None."""
        init = self.initializers.get(name)
        if init is None or len(init.dims) != 2 or init.data_type not in FLOAT_TYPES:
            return None
        return numpy_helper.to_array(init)


def _swap_last_two(rank: int) -> list:
    return [*range(rank - 2), rank - 1, rank - 2]


@dataclass
class _Plan:
    """How one MatMul becomes MatMulNBits: weight (K, N) as B, the activation (already
    transposed for W @ x, or ``transpose_input`` says to), and the output's rank for W @ x."""

    form: str
    weight: np.ndarray
    activation: str
    constant: str
    rank: int = 0
    transpose_input: bool = False


def _perm(node) -> list:
    return next((list(att.ints) for att in node.attribute if att.name == "perm"), [])


def _plan(g: _Graph, node) -> _Plan | None:
    a, b = node.input[0], node.input[1]
    weight = g.weight(b)
    if weight is not None:
        return _Plan("x @ W", weight, a, b)
    transpose = g.producers.get(b)
    if transpose is not None and transpose.op_type == "Transpose":
        weight = g.weight(transpose.input[0])
        if weight is not None and _perm(transpose) in ([1, 0], []):
            return _Plan("x @ W^T", weight.T, a, transpose.input[0])
    weight = g.weight(a)
    if weight is None:
        return None
    inner = g.producers.get(b)
    if inner is not None and inner.op_type == "Transpose":  # x = Transpose(x0): x^T is x0
        perm = _perm(inner)
        if len(perm) >= 2 and perm == _swap_last_two(len(perm)):
            return _Plan("W @ x", weight.T, inner.input[0], a, rank=len(perm))
    rank = g.ranks.get(b, 0)
    return _Plan("W @ x", weight.T, b, a, rank=rank, transpose_input=True) if rank >= 2 else None


def _metadata(node, key: str) -> str:
    return next((p.value for p in node.metadata_props if p.key == key), "")


def _source(node, constant: str) -> str:
    """The PyTorch module whose weight the MatMul reads, from what the exporter recorded: the
    innermost module scope, or its child named by the weight parameter when the weight is used
    by a call in the parent (``F.linear(x, self.dt_proj.weight)`` inside the mixer); the
    mixer's padded copy of dt_proj's weight (mixer.PADDED_DT_WEIGHT_ATTR) counts as dt_proj."""
    scopes = _metadata(node, "pkg.torch.onnx.name_scopes")
    modules = [s.strip(" '") for s in scopes.strip("[]").split(",") if "." in s]
    if "." in constant and constant.endswith(".weight"):
        source = constant[: -len(".weight")]  # the initializer is the named parameter itself
    elif modules and re.search(rf"%c_\w*_{PADDED_DT_WEIGHT_ATTR}\b", _metadata(node, "pkg.torch.onnx.fx_node")):
        source = f"{modules[-1]}.dt_proj"
    elif modules:
        source = modules[-1]
        parameter = re.search(r"%p_(\w+?)_weight\b", _metadata(node, "pkg.torch.onnx.fx_node"))
        scope = source.replace(".", "_") + "_"
        if parameter and parameter.group(1).startswith(scope):
            source = f"{source}.{parameter.group(1)[len(scope):]}"
    else:
        source = constant
    return source.removeprefix("model.")


def _kind(source: str) -> str:
    last = source.rsplit(".", 1)[-1]
    return last if last in LAYER_KINDS else "other"


def _rewrite(g: _Graph, node, plan: _Plan, block_size: int, accuracy_level: int) -> tuple[list, dict]:
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
                                          perm=_swap_last_two(plan.rank)))
            activation = f"{prefix}.x_t"
        out = f"{prefix}.y_t"
    matmul = helper.make_node(OP_TYPE, [activation, f"{prefix}.B", f"{prefix}.scales", f"{prefix}.zero_points"],
                              [out], name=f"{prefix}.matmul", domain=MS_DOMAIN, K=packed.k, N=packed.n,
                              bits=int4.BITS, block_size=block_size, accuracy_level=accuracy_level)
    matmul.metadata_props.extend(node.metadata_props)
    nodes.append(matmul)
    if plan.form == "W @ x":
        nodes.append(helper.make_node("Transpose", [out], [node.output[0]], name=f"{prefix}.out",
                                      perm=_swap_last_two(plan.rank)))
    source = _source(node, plan.constant)
    record = {"node": node.name, "weights": prefix, "source": source, "kind": _kind(source), "form": plan.form,
              "K": packed.k, "N": packed.n, "float_bytes": int(plan.weight.nbytes), "int4_bytes": int(packed.nbytes)}
    return nodes, record


def _drop_unused(graph: onnx.GraphProto) -> None:
    """Remove Transposes and initializers nothing reads any more (a shared weight stays)."""
    outputs = {out.name for out in graph.output}
    while True:
        read = {name for node in graph.node for name in node.input} | outputs
        dead = [node for node in graph.node if node.op_type == "Transpose" and node.output[0] not in read]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    read = {name for node in graph.node for name in node.input} | outputs
    for init in [init for init in graph.initializer if init.name not in read]:
        graph.initializer.remove(init)


def quantize_model(model: onnx.ModelProto, block_size: int, accuracy_level: int) -> dict:
    """Rewrite ``model`` in place; returns the record for export_info.json's ``quantization``."""
    try:
        g = _Graph(onnx.shape_inference.infer_shapes(model).graph)
    except ValueError:  # past protobuf's 2 GB: no inferred ranks, only the forms that need none
        g = _Graph(model.graph)
    g.graph = model.graph
    new_nodes, quantized, kept = [], [], []
    for node in model.graph.node:
        plan = _plan(g, node) if node.op_type == "MatMul" else None
        if node.op_type == "MatMul" and plan is None:
            kept.append({"node": node.name, "reason": "no constant 2-D float weight"})
        if plan is None:
            new_nodes.append(node)
            continue
        nodes, record = _rewrite(g, node, plan, block_size, accuracy_level)
        new_nodes += nodes
        quantized.append(record)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    _drop_unused(model.graph)
    if not any(op.domain == MS_DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    kinds = {kind: sum(r["kind"] == kind for r in quantized) for kind in (*LAYER_KINDS, "other")}
    return {
        "method": "int4", "op": f"{MS_DOMAIN}.{OP_TYPE}", "bits": int4.BITS, "block_size": block_size,
        "accuracy_level": accuracy_level, "symmetric": False,
        "layers": {kind: count for kind, count in kinds.items() if count},
        "float_bytes": sum(r["float_bytes"] for r in quantized),
        "int4_bytes": sum(r["int4_bytes"] for r in quantized),
        "quantized": quantized, "kept_float": kept,
    }


def quantize_file(path: Path, block_size: int, accuracy_level: int, external_data: str | None) -> dict:
    """Quantize the graph at ``path`` in place (its weights in ``external_data`` if named)."""
    path = Path(path)
    model = onnx.load(path)
    record = quantize_model(model, block_size, accuracy_level)
    if external_data:
        os.remove(path.parent / external_data)  # onnx appends to an existing data file
    onnx.save(model, path, save_as_external_data=bool(external_data), location=external_data)
    return record
