"""--linear-op: which MatMuls become our Linear op, in every form the exporter writes, with which
weight (transposed once, the tied table shared), what stays a MatMul, what export_info.json
records, and the options that refuse it.

The rewritten graphs run through onnx.reference with the numpy Linear node (the op's C++
kernels are tested with the library); a rewrite changes no value beyond float32 summation
order, so the graphs must agree with the un-rewritten ones to float32 precision.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from mamba_export import graph_io
from mamba_export.cli import export as export_cli
from mamba_export.errors import MambaExportError
from mamba_export.export import convert
from mamba_export.export.linear_products import (
    SHARED_TABLE,
    TRANSPOSED_COPY,
    WEIGHT_IS_LEFT,
    rewrite_file,
    rewrite_model,
)
from mamba_export.export.matmul_forms import NO_CONSTANT
from mamba_export.ops.linear import DOMAIN, OP_TYPE
from mamba_export.ops.numpy_op import NUMPY_OPS
from mamba_export.options import ExportOptions
from tests.export.evaluators import reference_session
from tests.export.test_convert import feeds_for, relative_error, tokens
from tests.support.tiny_models import tiny_config, tiny_model

MAMBA_LAYERS = ("in_proj", "x_proj", "dt_proj", "out_proj")
# Two float32 graphs whose products differ only in summation order (K <= 64 here).
FLOAT32_AGREEMENT = 1e-5


def _forms_graph(rng) -> tuple[onnx.ModelProto, dict]:
    """Every case the pass meets: y1 = x @ W (W read by nothing else), y2 = x @ V and y3 = x @ V
    with V also added to (one copy for both), y4 = x2 @ Transpose(E) with E also gathered,
    y5 = W1 @ x3 (weight on the left), y6 = x2 @ x4 (no constant)."""
    arrays = {"W": rng.standard_normal((64, 24)), "V": rng.standard_normal((64, 12)),
              "E": rng.standard_normal((50, 64)), "W1": rng.standard_normal((40, 64))}
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["y1"], name="plain"),
        helper.make_node("MatMul", ["x", "V"], ["y2"], name="shared_a"),
        helper.make_node("MatMul", ["x", "V"], ["y3"], name="shared_b"),
        helper.make_node("Add", ["V", "V"], ["v2"]),
        helper.make_node("Transpose", ["E"], ["E_t"], perm=[1, 0]),
        helper.make_node("MatMul", ["x2", "E_t"], ["y4"], name="head"),
        helper.make_node("Gather", ["E", "ids"], ["emb"]),
        helper.make_node("MatMul", ["W1", "x3"], ["y5"], name="w_at_x"),
        helper.make_node("MatMul", ["x2", "x4"], ["y6"], name="activations"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 64]),
              helper.make_tensor_value_info("x2", TensorProto.FLOAT, [2, 3, 64]),
              helper.make_tensor_value_info("x3", TensorProto.FLOAT, [2, 64, 7]),
              helper.make_tensor_value_info("x4", TensorProto.FLOAT, [2, 64, 7]),
              helper.make_tensor_value_info("ids", TensorProto.INT64, [4])]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
               for name in ("y1", "y2", "y3", "v2", "y4", "emb", "y5", "y6")]
    initializers = [numpy_helper.from_array(a.astype(np.float32), name) for name, a in arrays.items()]
    graph = helper.make_graph(nodes, "forms", inputs, outputs, initializers)
    feeds = {info.name: rng.standard_normal([d.dim_value for d in info.type.tensor_type.shape.dim])
             .astype(np.float32) for info in inputs[:4]}
    feeds["ids"] = np.array([0, 3, 49, 7])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), feeds


def _run(model, feeds) -> list:
    return ReferenceEvaluator(model, new_ops=list(NUMPY_OPS)).run(None, feeds)


def _initializers(model) -> dict:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def test_each_form_gets_the_weight_it_needs():
    model, feeds = _forms_graph(np.random.default_rng(0))
    before, weights = _run(model, feeds), _initializers(model)
    record = rewrite_model(model)
    nodes = {n.name: n for n in model.graph.node if n.name}
    assert {name: n.op_type for name, n in nodes.items()} == {
        "plain": OP_TYPE, "shared_a": OP_TYPE, "shared_b": OP_TYPE, "head": OP_TYPE, "w_at_x": "MatMul",
        "activations": "MatMul"}
    assert all(nodes[name].domain == DOMAIN for name in ("plain", "shared_a", "shared_b", "head"))
    assert (DOMAIN, 1) in {(op.domain, op.version) for op in model.opset_import}
    after = _initializers(model)
    # x @ W: W replaced by its transpose; x @ V twice: one transposed copy, V kept for the Add
    assert "W" not in after and "V" in after
    np.testing.assert_array_equal(after[nodes["plain"].input[1]], weights["W"].T)
    assert nodes["shared_a"].input[1] == nodes["shared_b"].input[1] != "V"
    np.testing.assert_array_equal(after[nodes["shared_a"].input[1]], weights["V"].T)
    # x @ Transpose(E): the table itself, the Transpose gone
    assert nodes["head"].input == ["x2", "E"]
    assert not any(n.op_type == "Transpose" for n in model.graph.node)
    assert set(after) == {"E", "V", "W1", nodes["plain"].input[1], nodes["shared_a"].input[1]}
    made = {r["node"]: (r["form"], r["weight_from"], r["K"], r["N"]) for r in record["rewritten"]}
    assert made == {"plain": ("x @ W", TRANSPOSED_COPY, 64, 24), "shared_a": ("x @ W", TRANSPOSED_COPY, 64, 12),
                    "shared_b": ("x @ W", TRANSPOSED_COPY, 64, 12), "head": ("x @ W^T", "as stored", 64, 50)}
    assert record["kept_matmul"] == [{"node": "w_at_x", "reason": WEIGHT_IS_LEFT},
                                     {"node": "activations", "reason": NO_CONSTANT}]
    assert record["added_bytes"] == 64 * 12 * 4  # V's copy; W's replaced W
    for name, old, new in zip(("y1", "y2", "y3", "v2", "y4", "emb", "y5", "y6"), before, _run(model, feeds),
                              strict=True):
        np.testing.assert_allclose(new, old, rtol=FLOAT32_AGREEMENT, atol=FLOAT32_AGREEMENT, err_msg=name)


def test_a_folded_transpose_of_the_table_reads_the_table():
    """The exporter folds small transposes into constants: the head's (K, N) copy equals the gathered
    (N, K) table, so the Linear reads the table instead of a second copy."""
    rng = np.random.default_rng(1)
    table = rng.standard_normal((30, 8)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["E", "ids"], ["emb"]),
             helper.make_node("MatMul", ["emb", "E_folded"], ["logits"], name="head")]
    graph = helper.make_graph(nodes, "tied", [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(table, "E"),
                               numpy_helper.from_array(np.ascontiguousarray(table.T), "E_folded")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    record = rewrite_model(model)
    assert [n.input[1] for n in model.graph.node if n.op_type == OP_TYPE] == ["E"]
    assert [i.name for i in model.graph.initializer] == ["E"]
    assert record["rewritten"][0]["weight_from"] == SHARED_TABLE and record["added_bytes"] < 0
    ids = np.array([1, 0, 29])
    np.testing.assert_allclose(_run(model, {"ids": ids})[0], table[ids] @ table.T, rtol=1e-6, atol=1e-6)


def test_external_data_is_rewritten_not_appended(tmp_path):
    model, feeds = _forms_graph(np.random.default_rng(2))
    expected = _run(model, feeds)
    path = tmp_path / "model.onnx"
    onnx.save(model, path, save_as_external_data=True, location="model.onnx.data", size_threshold=0)
    before = (tmp_path / "model.onnx.data").stat().st_size
    record = rewrite_file(path, "model.onnx.data")
    assert len(record["rewritten"]) == 4
    # W's transposed copy replaced W; V's copy was added: the file grew by that copy only
    assert (tmp_path / "model.onnx.data").stat().st_size == before + record["added_bytes"]
    assert onnx.load(path, load_external_data=False).graph.initializer[0].data_location == TensorProto.EXTERNAL
    for new, old in zip(_run(str(path), feeds), expected, strict=True):
        np.testing.assert_allclose(new, old, rtol=FLOAT32_AGREEMENT, atol=FLOAT32_AGREEMENT)


def _linears(model) -> list:
    return [n for n in model.graph.node if n.op_type == OP_TYPE and n.domain == DOMAIN]


def _outputs(folder, config, ids) -> list:
    return reference_session(folder / "model.onnx").run(None, feeds_for(config, ids))


def test_every_projection_and_the_tied_head_become_linear(export_tiny):
    plain_folder, folder = export_tiny("default"), export_tiny("default", linear_op=True)
    info = json.loads((folder / "export_info.json").read_text())
    record, layers = info["linear_products"], tiny_config().num_hidden_layers
    assert info["options"]["linear_op"] is True and info["quantization"] is None
    assert record["layers"] == {**{kind: layers for kind in MAMBA_LAYERS}, "lm_head": 1}
    assert record["kept_matmul"] == [] and record["op"] == f"{DOMAIN}.{OP_TYPE}"
    plain, model = onnx.load(plain_folder / "model.onnx"), onnx.load(folder / "model.onnx")
    assert not any(n.op_type == "MatMul" for n in model.graph.node)
    linears = _linears(model)
    assert len(linears) == len(record["rewritten"]) == 4 * layers + 1
    # the weights: each the transpose of the plain graph's MatMul weight, read as (N, K)
    plain_weights, weights = _initializers(plain), _initializers(model)
    plain_matmuls = {n.name: n for n in plain.graph.node if n.op_type == "MatMul"}
    for node in linears:
        np.testing.assert_array_equal(weights[node.input[1]], plain_weights[plain_matmuls[node.name].input[1]].T)
        assert node.input[0] == plain_matmuls[node.name].input[0]
    # the tied head reads the table the Gather reads
    gather = next(n for n in model.graph.node if n.op_type == "Gather")
    head = next(r for r in record["rewritten"] if r["kind"] == "lm_head")
    assert head["weight"] == gather.input[0] and head["weight_from"] == SHARED_TABLE
    assert sum(i.name == gather.input[0] for i in model.graph.initializer) == 1
    config = tiny_config()
    for length in (1, 6):
        ids = tokens(config, 2, length, seed=length)
        expected, actual = _outputs(plain_folder, config, ids), _outputs(folder, config, ids)
        names = graph_io.output_names(layers)
        for name, old, new in zip(names, expected, actual, strict=True):
            assert relative_error(new, old) < FLOAT32_AGREEMENT, name


def test_untied_head_and_fused_delta_layers(export_tiny):
    """An untied head keeps its own weight; with fuse_delta_proj there is no dt_proj to rewrite."""
    untied = json.loads((export_tiny("untied_head", linear_op=True) / "export_info.json").read_text())
    head = next(r for r in untied["linear_products"]["rewritten"] if r["kind"] == "lm_head")
    assert head["weight_from"] != SHARED_TABLE
    fused = json.loads((export_tiny("default", linear_op=True, fuse_delta_proj=True) / "export_info.json")
                       .read_text())["linear_products"]
    layers = tiny_config().num_hidden_layers
    assert fused["layers"] == {"in_proj": layers, "x_proj": layers, "out_proj": layers, "lm_head": 1}


def test_large_models_keep_weights_in_external_data(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "EXTERNAL_DATA_THRESHOLD", 0)
    folder = convert.export(tiny_model("one_layer"), tmp_path / "out",
                            ExportOptions(validate=False, show_progress=False, linear_op=True))
    info = json.loads((folder / "export_info.json").read_text())
    assert info["external_data"] and sorted(p.name for p in folder.glob("model.onnx*")) == [
        "model.onnx", info["external_data"]]
    assert len(info["linear_products"]["rewritten"]) == 5
    model = onnx.load(folder / "model.onnx", load_external_data=False)
    assert len(_linears(model)) == 5
    config = tiny_config("one_layer")
    ids = tokens(config, 1, 4)
    logits = _outputs(folder, config, ids)[0]
    with torch.no_grad():
        expected = tiny_model("one_layer").double()(torch.from_numpy(ids)).logits.numpy()
    assert relative_error(logits, expected) < 1e-4


@pytest.mark.parametrize(("options", "names"), [
    ({"backend": "standard"}, ("linear_op", "backend='custom'", "'standard'")),
    ({"quantize": "int4"}, ("linear_op", "quantize='int4'", "both rewrite the MatMuls; choose one")),
])
def test_bad_combinations_are_refused(options, names):
    with pytest.raises(MambaExportError) as caught:
        ExportOptions(linear_op=True, **options)
    assert all(name in str(caught.value) for name in names), caught.value
    ExportOptions(linear_op=False, **options)  # the other option alone is fine


def test_linear_op_must_be_a_bool_or_none():
    with pytest.raises(MambaExportError, match="linear_op must be True, False or None, got 'yes'"):
        ExportOptions(linear_op="yes")


@pytest.mark.parametrize(("options", "uses"), [
    ({}, False), ({"device": "cuda"}, True), ({"device": "cuda", "backend": "standard"}, False),
    ({"device": "cuda", "quantize": "int4"}, False), ({"device": "cuda", "linear_op": False}, False),
    ({"linear_op": True}, True)])
def test_by_default_cuda_exports_use_the_op(options, uses):
    """Left unset, the op goes into CUDA exports of the custom backend that are not quantized."""
    assert ExportOptions(**options).uses_linear_op is uses


def test_cli_flag_reaches_the_options(monkeypatch):
    parser = argparse.ArgumentParser()
    export_cli.add_arguments(parser)
    assert parser.parse_args(["-m", "x", "out"]).linear_op is None
    assert parser.parse_args(["-m", "x", "out", "--no-linear-op"]).linear_op is False
    args = parser.parse_args(["-m", "x", "out", "--linear-op", "--no-check"])
    seen = {}

    def fake_export(model, output, options):
        seen["options"] = options
        raise KeyboardInterrupt  # stop before anything is read back

    monkeypatch.setattr(convert, "export", fake_export)
    with pytest.raises(KeyboardInterrupt):
        export_cli.run(args)
    assert seen["options"].linear_op is True and seen["options"].backend == "custom"


def test_shape_inference_sees_large_weights_as_dims_alone(monkeypatch):
    """A model past protobuf's 2 GB cannot be serialized for shape inference: weights over the stub
    size go to it as their dims alone. With every weight stubbed the rewrite is the same."""
    from mamba_export.export import matmul_forms

    full, feeds = _forms_graph(np.random.default_rng(0))
    stubbed = onnx.ModelProto()
    stubbed.CopyFrom(full)
    expected = rewrite_model(full)
    monkeypatch.setattr(matmul_forms, "_STUB_BYTES", 0)
    assert rewrite_model(stubbed) == expected
    for old, new in zip(_run(full, feeds), _run(stubbed, feeds), strict=True):
        np.testing.assert_array_equal(new, old)


def test_the_linear_export_passes_its_parity_check_and_generates_the_same_tokens_on_the_cpu(export_tiny):
    """Through ONNX Runtime with the library's CPU kernel: the export's own parity check against the
    float64 oracle passes, and generate() picks the tokens of the MatMul export."""
    from mamba_export import ORTMambaForCausalLM

    folder = export_tiny("default", linear_op=True, validate=True)
    info = json.loads((folder / "export_info.json").read_text())
    assert info["parity"]["passed"] is True, info["parity"]
    config = tiny_config()
    ids = tokens(config, 2, 5, seed=3)
    plain = ORTMambaForCausalLM.from_pretrained(export_tiny("default")).generate(ids, max_new_tokens=8)
    linear = ORTMambaForCausalLM.from_pretrained(folder).generate(ids, max_new_tokens=8)
    np.testing.assert_array_equal(np.asarray(linear), np.asarray(plain))
