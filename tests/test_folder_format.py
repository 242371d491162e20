"""export_info.json: the I/O description, the recorded facts, and reading older or broken records."""

from __future__ import annotations

import json

import pytest

from mamba_export import folder_format, graph_io
from mamba_export.errors import ExportFolderError
from mamba_export.export.architectures import ModelDims
from mamba_export.folder_format import build_info, io_description, read_info, versions, write_info
from mamba_export.options import ExportOptions

DIMS = ModelDims(num_layers=2, hidden_size=16, intermediate_size=32, state_size=8, conv_kernel=4,
                 vocab_size=61)
SOURCE = {"model": "x", "class": "FalconMambaForCausalLM", "random_weights": False, "preset": None}


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


def make_info(head_output="logits", **options):
    options = ExportOptions(**{"backend": "standard", "dtype": "fp16", "validate": False, **options})
    return build_info(architecture="falcon_mamba", dims=DIMS, options=options, head_output=head_output,
                      source=SOURCE, external_data=None)


def test_build_write_read_round_trip(tmp_path):
    info = make_info()
    assert info["needs_custom_ops"] is False and info["dtype"] == "fp16"
    assert info["head_output"] == "logits" and "model_class" not in info
    assert info["format_version"] == folder_format.FORMAT_VERSION
    assert info["options"]["backend"] == "standard"
    write_info(tmp_path, info)
    assert read_info(tmp_path) == {**info, "options": {**info["options"], "check_lengths": [1, 7, 64]}}


def test_hidden_state_record_ignores_logits_option():
    info = make_info("last_hidden_state", logits="last")
    assert info["logits"] == "all" and info["outputs"][0]["shape"] == ["batch", "sequence", 16]
    with pytest.raises(ValueError, match="head_output"):
        make_info("hidden")


def write(tmp_path, info):
    (tmp_path / folder_format.INFO_FILE).write_text(json.dumps(info))
    return tmp_path


@pytest.mark.parametrize("model_class, head", [
    ("MambaForCausalLM", "logits"), ("MambaModel", "last_hidden_state"),
    ("FalconMambaForCausalLM", "logits"), ("FalconMambaModel", "last_hidden_state"),
])
def test_format_1_records_are_read(tmp_path, model_class, head):
    """A folder written before head_output existed still loads, with the head its class implied."""
    old = {key: value for key, value in make_info(head).items() if key != "head_output"}
    old.update(format_version=1, model_class=model_class, source={"model": "x"})
    info = read_info(write(tmp_path, old))
    assert info["head_output"] == head and info["format_version"] == folder_format.FORMAT_VERSION
    assert info["source"] == {"model": "x", "class": model_class} and "model_class" not in info


def test_format_1_record_with_unknown_class(tmp_path):
    old = {**make_info(), "format_version": 1, "model_class": "MambaTokenizer"}
    with pytest.raises(ExportFolderError, match="model_class 'MambaTokenizer'"):
        read_info(write(tmp_path, old))


@pytest.mark.parametrize("version", [0, 3, None, "2"])
def test_unreadable_format_version(tmp_path, version):
    with pytest.raises(ExportFolderError, match=f"format_version {version!r}.*reads 1, 2"):
        read_info(write(tmp_path, {**make_info(), "format_version": version}))


def test_unknown_head_output(tmp_path):
    with pytest.raises(ExportFolderError, match="head_output 'hidden_states'"):
        read_info(write(tmp_path, {**make_info(), "head_output": "hidden_states"}))


def test_versions_name_every_component():
    assert set(versions()) == {"mamba_export", "torch", "transformers", "onnx", "onnxscript", "onnxruntime"}
    assert versions()["torch"]


@pytest.mark.parametrize(("device", "head_output", "expected"), [
    ("cuda", graph_io.LOGITS, True), ("cuda", graph_io.LAST_HIDDEN_STATE, False), ("cpu", graph_io.LOGITS, False)])
def test_the_record_says_whether_the_graph_has_next_tokens(device, head_output, expected):
    """next_tokens left unset: the record and the described outputs follow ExportOptions.writes_next_tokens
    (CUDA exports of language models), and the options are kept as given (None)."""
    info = build_info(architecture="falcon_mamba", dims=DIMS, options=ExportOptions(device=device),
                      head_output=head_output, source=SOURCE, external_data=None)
    assert info["next_tokens"] is expected and info["options"]["next_tokens"] is None
    assert (graph_io.NEXT_TOKENS in [output["name"] for output in info["outputs"]]) is expected
