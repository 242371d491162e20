"""--quantize int4: which MatMuls become MatMulNBits, in every form the exporter writes, what
stays float (the embedding table, the state), and what export_info.json records."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mamba_export.errors import MambaExportError
from mamba_export.export.quantize import MS_DOMAIN, OP_TYPE, quantize_file, quantize_model
from mamba_export.ops import int4
from mamba_export.options import ExportOptions
from tests.support.tiny_models import tiny_config

MAMBA_LAYERS = ("in_proj", "x_proj", "dt_proj", "out_proj")


def _constant_matmuls(graph) -> list:
    constants = {init.name for init in graph.initializer}
    return [n for n in graph.node if n.op_type == "MatMul" and (set(n.input) & constants)]


@pytest.mark.parametrize("backend", ["custom", "standard"])
def test_every_mamba_matmul_and_the_head_become_matmulnbits(export_tiny, backend):
    folder = export_tiny("default", backend=backend, quantize="int4", block_size=32)
    record = json.loads((folder / "export_info.json").read_text())["quantization"]
    layers = tiny_config().num_hidden_layers
    assert record["layers"] == {**{kind: layers for kind in MAMBA_LAYERS}, "lm_head": 1}
    assert record["kept_float"] == [] and record["block_size"] == 32 and record["bits"] == 4
    assert record["op"] == f"{MS_DOMAIN}.{OP_TYPE}" and record["int4_bytes"] > 0
    model = onnx.load(folder / "model.onnx")
    assert _constant_matmuls(model.graph) == []
    assert sum(n.op_type == OP_TYPE for n in model.graph.node) == len(record["quantized"]) == 4 * layers + 1
    # The tied embedding table stays float for the Gather; the SSM state stays float32.
    gather = next(n for n in model.graph.node if n.op_type == "Gather")
    table = next(i for i in model.graph.initializer if i.name == gather.input[0])
    assert table.data_type == TensorProto.FLOAT and list(table.dims) == [61, 16]
    ssm = next(o for o in model.graph.output if o.name == "present.0.ssm_state")
    assert ssm.type.tensor_type.elem_type == TensorProto.FLOAT


def test_fp16_int4_keeps_fp16_activations_and_float32_state(export_tiny):
    folder = export_tiny("default", dtype="fp16", quantize="int4")
    model = onnx.load(folder / "model.onnx")
    scales = [i for i in model.graph.initializer if i.name.endswith(".int4.scales")]
    assert scales and all(i.data_type == TensorProto.FLOAT16 for i in scales)
    types = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert types["logits"] == TensorProto.FLOAT16 and types["present.1.ssm_state"] == TensorProto.FLOAT


def test_bf16_and_unknown_block_sizes_are_refused():
    with pytest.raises(MambaExportError, match="fp32 or fp16"):
        ExportOptions(dtype="bf16", quantize="int4")
    with pytest.raises(MambaExportError, match="block_size"):
        ExportOptions(quantize="int4", block_size=48)
    with pytest.raises(MambaExportError, match="quantize"):
        ExportOptions(quantize="int8")


def _forms_graph(rng) -> tuple[onnx.ModelProto, dict]:
    """y1 = W1 @ x (x rank 3, not a transpose), y2 = x2 @ Transpose(E) with E also gathered,
    y3 = x2 @ x3 (no constant): the three cases the pass meets besides x @ W."""
    w1 = rng.standard_normal((40, 64)).astype(np.float32)  # (D, K): y1 (B, D, L) = W1 @ x (B, K, L)
    table = rng.standard_normal((50, 64)).astype(np.float32)  # (vocab, hidden), tied
    nodes = [
        helper.make_node("MatMul", ["W1", "x"], ["y1"], name="w_at_x"),
        helper.make_node("Transpose", ["E"], ["E_t"], perm=[1, 0]),
        helper.make_node("MatMul", ["x2", "E_t"], ["y2"], name="head"),
        helper.make_node("Gather", ["E", "ids"], ["emb"]),
        helper.make_node("MatMul", ["x2", "x3"], ["y3"], name="activations"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64, 5]),
              helper.make_tensor_value_info("x2", TensorProto.FLOAT, [2, 3, 64]),
              helper.make_tensor_value_info("x3", TensorProto.FLOAT, [2, 64, 7]),
              helper.make_tensor_value_info("ids", TensorProto.INT64, [4])]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("y1", "y2", "emb", "y3")]
    graph = helper.make_graph(nodes, "forms", inputs, outputs,
                              [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(table, "E")])
    feeds = {"x": rng.standard_normal((2, 64, 5)).astype(np.float32),
             "x2": rng.standard_normal((2, 3, 64)).astype(np.float32),
             "x3": rng.standard_normal((2, 64, 7)).astype(np.float32), "ids": np.array([0, 3, 49, 7])}
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), feeds


def _run(model: onnx.ModelProto, feeds: dict) -> list:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def test_weight_as_a_input_transposed_weight_and_shared_tables(tmp_path):
    model, feeds = _forms_graph(np.random.default_rng(0))
    w1, table = (numpy_helper.to_array(i) for i in model.graph.initializer)
    float_out = _run(model, feeds)
    record = quantize_model(model, block_size=32, accuracy_level=0)
    forms = {r["node"]: r["form"] for r in record["quantized"]}
    assert forms == {"w_at_x": "W @ x", "head": "x @ W^T"}
    assert record["kept_float"] == [{"node": "activations", "reason": "no constant 2-D float weight"}]
    y1, y2, emb, y3 = _run(model, feeds)
    # W @ x through (x^T @ W^T)^T: the dequantized W1, exactly as the kernel holds it
    w1_q = int4.dequantize(int4.quantize(w1.T, 32)).T
    np.testing.assert_allclose(y1, w1_q @ feeds["x"].astype(np.float64), rtol=0, atol=1e-4)
    e_q = int4.dequantize(int4.quantize(table.T, 32))
    np.testing.assert_allclose(y2, feeds["x2"].astype(np.float64) @ e_q, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(emb, float_out[2])  # the Gather still reads the float table
    np.testing.assert_array_equal(y3, float_out[3])
    assert np.abs(y1 - float_out[0]).max() > 0  # the weights really are 4-bit now


def test_external_data_is_rewritten_not_appended(tmp_path):
    model, feeds = _forms_graph(np.random.default_rng(1))
    path = tmp_path / "model.onnx"
    onnx.save(model, path, save_as_external_data=True, location="model.onnx.data", size_threshold=0)
    before = (tmp_path / "model.onnx.data").stat().st_size
    record = quantize_file(path, 64, 4, "model.onnx.data")
    assert len(record["quantized"]) == 2
    # the float W1 copy is gone: only the tied table and the 4-bit weights remain
    assert (tmp_path / "model.onnx.data").stat().st_size < before
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.run(None, feeds)[0].shape == (2, 40, 5)
