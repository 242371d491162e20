"""export_info.json: the I/O description and the recorded facts."""

from __future__ import annotations

from mamba_export.export.architectures import ModelDims
from mamba_export.export.info import build_info, io_description, read_info, versions, write_info
from mamba_export.options import ExportOptions

DIMS = ModelDims(num_layers=2, hidden_size=16, intermediate_size=32, state_size=8, conv_kernel=4,
                 vocab_size=61)


def test_io_description_follows_graph_io():
    inputs, outputs = io_description(DIMS, "float16", "logits", "all")
    assert [i["name"] for i in inputs][:4] == ["input_ids", "attention_mask", "past.0.conv_state",
                                                "past.0.ssm_state"]
    assert inputs[2] == {"name": "past.0.conv_state", "shape": ["batch", 32, 3], "dtype": "float16"}
    assert inputs[3] == {"name": "past.0.ssm_state", "shape": ["batch", 32, 8], "dtype": "float32"}
    assert outputs[0] == {"name": "logits", "shape": ["batch", "sequence", 61], "dtype": "float16"}
    assert outputs[-1]["name"] == "present.1.ssm_state"


def test_last_logits_and_hidden_state_shapes():
    _, last = io_description(DIMS, "float32", "logits", "last")
    assert last[0]["shape"] == ["batch", 1, 61]
    _, hidden = io_description(DIMS, "float32", "last_hidden_state", "all")
    assert hidden[0] == {"name": "last_hidden_state", "shape": ["batch", "sequence", 16], "dtype": "float32"}


def test_build_write_read_round_trip(tmp_path):
    options = ExportOptions(backend="standard", dtype="fp16", validate=False)
    info = build_info(model_class="MambaForCausalLM", architecture="mamba", dims=DIMS, options=options,
                      head_output="logits", source={"model": "x", "random_weights": False, "preset": None},
                      external_data=None)
    assert info["needs_custom_ops"] is False and info["dtype"] == "fp16"
    assert info["options"]["backend"] == "standard"
    write_info(tmp_path, info)
    assert read_info(tmp_path) == {**info, "options": {**info["options"], "check_lengths": [1, 7, 64]}}


def test_versions_name_every_component():
    assert set(versions()) == {"mamba_export", "torch", "transformers", "onnx", "onnxscript", "onnxruntime"}
    assert versions()["torch"]
