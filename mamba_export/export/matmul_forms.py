"""The MatMuls of a written graph that multiply by a constant weight: their forms and their layers.

Two passes rewrite the products of a saved ``model.onnx``: ``--quantize int4``
(:mod:`mamba_export.export.quantize`, into MatMulNBits) and ``--linear-op``
(:mod:`mamba_export.export.linear_products`, into our Linear op). Both must find the same
MatMuls and name the same layers in their records, so what they share lives here: the
forms a constant-weight MatMul takes in our graphs,

    x @ W               the weight is B, (K, N)
    x @ Transpose(W)    a 2-D transpose of a constant W, (N, K)
    W @ x               the weight is A (x may itself be a transpose, as in dt_proj)

which PyTorch module the weight belongs to (``in_proj`` ... ``lm_head``), and the clean-up
of what a rewrite leaves unread.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from mamba_export.export.mixer import PADDED_DT_WEIGHT_ATTR

# The layer names of a Mamba block and its head, as the records count them.
LAYER_KINDS = ("in_proj", "x_proj", "dt_proj", "out_proj", "lm_head")
NO_CONSTANT = "no constant 2-D float weight"


class Graph:
    """Lookups over one graph while it is rewritten; weights of ``float_types`` only."""

    def __init__(self, graph: onnx.GraphProto, float_types: tuple = (TensorProto.FLOAT, TensorProto.FLOAT16)):
        self.graph = graph
        self.float_types = float_types
        self.initializers = {init.name: init for init in graph.initializer}
        self.producers = {out: node for node in graph.node for out in node.output}
        self.ranks = {info.name: len(info.type.tensor_type.shape.dim)
                      for info in [*graph.value_info, *graph.input, *graph.output]
                      if info.type.tensor_type.HasField("shape")}

    def is_weight(self, name: str) -> bool:
        """Whether ``name`` is a 2-D float initializer."""
        init = self.initializers.get(name)
        return init is not None and len(init.dims) == 2 and init.data_type in self.float_types

    def weight(self, name: str) -> np.ndarray | None:
        """The 2-D float constant called ``name``, or None."""
        return numpy_helper.to_array(self.initializers[name]) if self.is_weight(name) else None


# Initializers larger than this go to shape inference as their dims alone.
_STUB_BYTES = 1 << 20


def _without_large_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every initializer over _STUB_BYTES reduced to its name, dtype and dims:
    shape inference needs no more, and a model past protobuf's 2 GB cannot be serialized for it."""
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    graph = light.graph
    graph.name = model.graph.name
    for field in ("node", "input", "output", "value_info"):
        getattr(graph, field).extend(getattr(model.graph, field))
    for init in model.graph.initializer:
        if init.ByteSize() > _STUB_BYTES:
            graph.initializer.append(TensorProto(name=init.name, data_type=init.data_type, dims=init.dims))
        else:
            graph.initializer.append(init)
    return light


def inferred_graph(model: onnx.ModelProto, float_types: tuple | None = None) -> Graph:
    """A :class:`Graph` over ``model.graph`` with the ranks shape inference finds. Large weights go
    to shape inference as their dims alone, so a model past protobuf's 2 GB is inferred too."""
    kwargs = {} if float_types is None else {"float_types": float_types}
    g = Graph(onnx.shape_inference.infer_shapes(_without_large_weights(model)).graph, **kwargs)
    g.graph = model.graph
    g.initializers = {init.name: init for init in model.graph.initializer}
    return g


def swap_last_two(rank: int) -> list:
    return [*range(rank - 2), rank - 1, rank - 2]


def perm(node) -> list:
    return next((list(att.ints) for att in node.attribute if att.name == "perm"), [])


@dataclass
class Form:
    """One constant-weight MatMul: ``form`` (one of the three above), ``weight`` the constant as
    B (K, N) (a transposed view for the last two forms), the ``activation`` it multiplies
    (already transposed for W @ x, or ``transpose_input`` says to), ``constant`` the name of
    the initializer the weight comes from (as stored: (K, N) for x @ W, (N, K) for x @ W^T and
    W @ x) and, for W @ x, the rank of the output."""

    form: str
    weight: np.ndarray
    activation: str
    constant: str
    rank: int = 0
    transpose_input: bool = False


def match(g: Graph, node) -> Form | None:
    """The form of MatMul ``node``, or None when neither operand is a constant 2-D float weight."""
    a, b = node.input[0], node.input[1]
    weight = g.weight(b)
    if weight is not None:
        return Form("x @ W", weight, a, b)
    transpose = g.producers.get(b)
    if transpose is not None and transpose.op_type == "Transpose":
        weight = g.weight(transpose.input[0])
        if weight is not None and perm(transpose) in ([1, 0], []):
            return Form("x @ W^T", weight.T, a, transpose.input[0])
    weight = g.weight(a)
    if weight is None:
        return None
    inner = g.producers.get(b)
    if inner is not None and inner.op_type == "Transpose":  # x = Transpose(x0): x^T is x0
        inner_perm = perm(inner)
        if len(inner_perm) >= 2 and inner_perm == swap_last_two(len(inner_perm)):
            return Form("W @ x", weight.T, inner.input[0], a, rank=len(inner_perm))
    rank = g.ranks.get(b, 0)
    return Form("W @ x", weight.T, b, a, rank=rank, transpose_input=True) if rank >= 2 else None


def _metadata(node, key: str) -> str:
    return next((p.value for p in node.metadata_props if p.key == key), "")


def source(node, constant: str) -> str:
    """The PyTorch module whose weight the MatMul reads, from what the exporter recorded: the
    innermost module scope, or its child named by the weight parameter when the weight is used
    by a call in the parent (``F.linear(x, self.dt_proj.weight)`` inside the mixer); the
    mixer's padded copy of dt_proj's weight (mixer.PADDED_DT_WEIGHT_ATTR) counts as dt_proj."""
    scopes = _metadata(node, "pkg.torch.onnx.name_scopes")
    modules = [s.strip(" '") for s in scopes.strip("[]").split(",") if "." in s]
    if "." in constant and constant.endswith(".weight"):
        found = constant[: -len(".weight")]  # the initializer is the named parameter itself
    elif modules and re.search(rf"%c_\w*_{PADDED_DT_WEIGHT_ATTR}\b", _metadata(node, "pkg.torch.onnx.fx_node")):
        found = f"{modules[-1]}.dt_proj"
    elif modules:
        found = modules[-1]
        parameter = re.search(r"%p_(\w+?)_weight\b", _metadata(node, "pkg.torch.onnx.fx_node"))
        scope = found.replace(".", "_") + "_"
        if parameter and parameter.group(1).startswith(scope):
            found = f"{found}.{parameter.group(1)[len(scope):]}"
    else:
        found = constant
    return found.removeprefix("model.")


def kind(module: str) -> str:
    """The layer kind of a module name (``other`` outside LAYER_KINDS)."""
    last = module.rsplit(".", 1)[-1]
    return last if last in LAYER_KINDS else "other"


def layer_counts(records: list) -> dict:
    """How many records each layer kind has, in LAYER_KINDS order, kinds with none left out."""
    counts = {name: sum(r["kind"] == name for r in records) for name in (*LAYER_KINDS, "other")}
    return {name: count for name, count in counts.items() if count}


def drop_unused(graph: onnx.GraphProto) -> None:
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


def save_in_place(model: onnx.ModelProto, path, external_data: str | None) -> None:
    """Write a rewritten ``model`` over ``path``, its weights in ``external_data`` if named (the old
    data file is removed first: onnx appends to an existing one)."""
    path = Path(path)
    if external_data:
        os.remove(path.parent / external_data)
    onnx.save(model, path, save_as_external_data=bool(external_data), location=external_data)
