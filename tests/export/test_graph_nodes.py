"""The exported graph's node budget per layer, and the counting rule behind it.

The custom backend's layer is at most 12 nodes (one kernel each on a GPU), with no
Transpose and no Cast: in float32 and in half precision with a half-precision residual
ONNX Runtime's fused norms need none; in half precision with the residual kept in
float32 our ResidualRMSNorm takes both dtypes as they are, so a half-precision layer has
exactly the nodes of a float32 one. No Split either: the ops read the projections'
outputs packed, so a Mamba layer is exactly 7 nodes: the norm, in_proj, CausalConv1d,
x_proj, dt_proj, SelectiveScan, out_proj.
"""

from __future__ import annotations

from collections import Counter

import onnx
import pytest
from onnx import helper

from mamba_export.export.convert import export
from mamba_export.export.graph_nodes import SCOPES_KEY, layer_nodes, layer_nodes_of_file
from mamba_export.ops import residual_norm
from mamba_export.ops.ort_norm_nodes import FUSED_NORM_OPS
from mamba_export.options import ExportOptions
from tests.support.tiny_models import tiny_model

MAX_NODES_PER_LAYER = 12
NORM_OPS = (*FUSED_NORM_OPS, residual_norm.OP_TYPE)


def _export(tmp_path_factory, name: str, dtype: str, backend: str = "custom"):
    folder = tmp_path_factory.mktemp(f"{name}_{dtype}_{backend}") / "out"
    export(tiny_model(name), folder, ExportOptions(dtype=dtype, backend=backend, validate=False,
                                                    show_progress=False))
    return layer_nodes_of_file(folder / "model.onnx", tiny_model(name).config.num_hidden_layers)


@pytest.mark.parametrize(("name", "dtype"), [
    ("default", "fp32"),
    ("default", "fp16"),               # residual in float32 (mamba-130m's config): ResidualRMSNorm
    ("default", "bf16"),
    ("residual_model_dtype", "fp16"),  # residual in float16: ONNX Runtime's fused norm
    ("three_layers", "fp32"),
])
def test_custom_layers_are_lean(tmp_path_factory, name, dtype):
    nodes = _export(tmp_path_factory, name, dtype)
    assert nodes.max_per_layer <= MAX_NODES_PER_LAYER, nodes.per_layer
    for layer in nodes.per_layer:
        assert layer["Transpose"] == 0, layer
        assert layer["Cast"] == 0, layer
        assert layer["SelectiveScan"] == 1 and layer["CausalConv1d"] == 1, layer
        assert sum(layer[op] for op in NORM_OPS) == 1, layer
        assert layer["Split"] == 0, layer
    assert nodes.outside["Transpose"] == 0 and nodes.outside["Cast"] == 0, nodes.outside


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_half_precision_layer_has_the_float32_layers_nodes(tmp_path_factory, dtype):
    """The 130m-shaped config keeps its residual in float32; the half-precision layer norms it
    with one ResidualRMSNorm and is node for node the float32 layer, norm type aside."""
    float32 = _export(tmp_path_factory, "default", "fp32")
    half = _export(tmp_path_factory, "default", dtype)
    assert half.counts == float32.counts, (half.per_layer, float32.per_layer)
    for layer in half.per_layer:
        assert layer[residual_norm.OP_TYPE] == 1, layer


@pytest.mark.parametrize("name", ["default", "three_layers"])
def test_float32_mamba_layer_is_seven_nodes(tmp_path_factory, name):
    """The lean layer, node for node (the 130m-shaped graph of a plain Mamba)."""
    nodes = _export(tmp_path_factory, name, "fp32")
    for layer in nodes.per_layer:
        norm = next(op for op in FUSED_NORM_OPS if layer[op])
        assert layer == Counter({norm: 1, "MatMul": 4, "CausalConv1d": 1, "SelectiveScan": 1}), layer
    assert nodes.counts == (7,) * len(nodes.per_layer)


def test_falcon_mamba_keeps_its_norms_without_transposes(tmp_path_factory):
    """B, C and dt are normed separately, so x_proj's output is split for the norms; in_proj's
    is still read packed."""
    nodes = _export(tmp_path_factory, "falcon_mamba", "fp32")
    for layer in nodes.per_layer:
        assert layer["Transpose"] == 0 and layer["Cast"] == 0, layer
        assert layer["SelectiveScan"] == 1 and layer["CausalConv1d"] == 1, layer
        assert layer["Split"] == 1, layer


def test_standard_backend_has_no_microsoft_nodes(tmp_path_factory):
    nodes = _export(tmp_path_factory, "default", "fp32", backend="standard")
    counts = sum(nodes.per_layer, Counter()) + nodes.outside
    assert not any(counts[op] for op in NORM_OPS + ("SelectiveScan", "CausalConv1d"))


def _node(op_type: str, scopes: list[str] | None) -> onnx.NodeProto:
    node = helper.make_node(op_type, [], [])
    if scopes is not None:
        entry = node.metadata_props.add()
        entry.key, entry.value = SCOPES_KEY, str(["", *scopes])
    return node


def test_unscoped_nodes_count_with_the_layer_before_them():
    nodes = [
        _node("Gather", ["model.backbone.embeddings"]),
        _node("Norm", ["rms_norm"]),                              # before any layer: outside
        _node("MatMul", ["model.backbone.layers.0.mixer", "model.backbone.layers.0.mixer.in_proj"]),
        _node("Split", None),                                     # layer 0
        _node("Norm", ["skip_rms_norm"]),                         # layer 0
        _node("MatMul", ["model.backbone.layers.1.mixer"]),
        _node("Norm", ["skip_rms_norm_1"]),                       # layer 1
        _node("MatMul", ["model.lm_head"]),                       # outside
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [], []))
    counted = layer_nodes(model, 2)
    assert counted.counts == (3, 2)
    assert counted.outside == Counter({"Gather": 1, "Norm": 1, "MatMul": 1})
    assert counted.summary() == "2 to 3 per layer (2 layers), 3 outside"
