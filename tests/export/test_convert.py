"""export() end to end on tiny models: folder contents, both backends, states, dtypes and errors.

Numbers are compared with transformers run in float64 (the oracle). The exported
graphs compute in float32; on these tiny models their error is about 1e-7
relative, and 1e-4 leaves room for float32 rounding while any wiring mistake
(a wrong weight, state or mask) gives errors of order 1.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mamba_export import graph_io
from mamba_export.errors import BackendUnavailableError, CustomOpsNotFoundError, OutputExistsError
from mamba_export.export import convert, presets
from mamba_export.export.convert import export
from mamba_export.ops.selective_scan import DOMAIN, OP_TYPE
from mamba_export.options import ExportOptions
from tests.conftest import SHARED_DATA
from tests.export.evaluators import reference_session
from tests.support.tiny_models import save_tiny_model, tiny_config, tiny_model

FLOAT32_GRAPH = 1e-4
INFO_KEYS = {"format_version", "head_output", "architecture", "backend", "needs_custom_ops", "op_domain",
             "op_version", "dtype", "opset", "logits", "num_layers", "hidden_size", "intermediate_size",
             "conv_kernel", "state_size", "vocab_size", "inputs", "outputs", "source", "options", "versions",
             "parity"}


def relative_error(actual, expected) -> float:
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.abs(np.asarray(actual, dtype=np.float64) - expected).max() / np.abs(expected).max())


def feeds_for(config, ids, mask=None, states=None, conv_dtype=np.float32) -> dict:
    feeds = {graph_io.INPUT_IDS: ids, graph_io.ATTENTION_MASK: np.ones_like(ids) if mask is None else mask}
    batch = ids.shape[0]
    for i in range(config.num_hidden_layers):
        conv = np.zeros((batch, config.intermediate_size, config.conv_kernel - 1), conv_dtype)
        ssm = np.zeros((batch, config.intermediate_size, config.state_size), np.float32)
        feeds[graph_io.past_name(i, "conv_state")] = conv if states is None else states[2 * i]
        feeds[graph_io.past_name(i, "ssm_state")] = ssm if states is None else states[2 * i + 1]
    return feeds


def oracle(name, ids, base=False, mask=None, half_weights=False):
    model = tiny_model(name, base=base)
    model = (model.half() if half_weights else model).double()
    with torch.no_grad():
        out = model(torch.from_numpy(ids), attention_mask=None if mask is None else torch.from_numpy(mask),
                    use_cache=False)
    return (out.last_hidden_state if base else out.logits).double().numpy()


def tokens(config, batch, length, seed=0):
    return np.random.default_rng(seed).integers(0, config.vocab_size, (batch, length)).astype(np.int64)


def cpu_session(folder):
    return ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])


def test_custom_folder_contents_and_info(export_tiny):
    folder = export_tiny("default")
    assert {"model.onnx", "config.json", "generation_config.json", "export_info.json"} <= {
        p.name for p in folder.iterdir()}
    info = json.loads((folder / "export_info.json").read_text())
    assert INFO_KEYS <= set(info)
    config = tiny_config("default")
    assert info["backend"] == "custom" and info["needs_custom_ops"] is True
    assert (info["op_domain"], info["op_version"]) == (DOMAIN, 1)
    assert info["num_layers"] == config.num_hidden_layers and info["vocab_size"] == config.vocab_size
    assert [i["name"] for i in info["inputs"]] == graph_io.input_names(config.num_hidden_layers)
    assert [o["name"] for o in info["outputs"]] == graph_io.output_names(config.num_hidden_layers)
    assert info["outputs"][0]["shape"] == ["batch", "sequence", config.vocab_size]
    assert info["source"] == {"model": "<in-memory model>", "class": "MambaForCausalLM", "random_weights": False,
                              "preset": None}


def test_custom_graph_has_one_node_per_layer_and_named_dynamic_io(export_tiny):
    model = onnx.load(export_tiny("default") / "model.onnx")
    scans = [n for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE]
    assert len(scans) == tiny_config("default").num_hidden_layers
    assert [i.name for i in model.graph.input] == graph_io.input_names(len(scans))
    ids_dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert ids_dims == ["batch", "sequence"]


@pytest.mark.parametrize("length", [1, 6, 13])
def test_custom_graph_matches_transformers_at_any_length(export_tiny, length):
    config = tiny_config("default")
    ids = tokens(config, 2, length, seed=length)
    logits = reference_session(export_tiny("default") / "model.onnx").run(None, feeds_for(config, ids))[0]
    assert relative_error(logits, oracle("default", ids)) < FLOAT32_GRAPH


def test_custom_graph_on_onnxruntime_with_the_library(export_tiny):
    from mamba_export.runtime.library import get_library_path

    try:
        library = get_library_path()
    except CustomOpsNotFoundError as error:
        pytest.skip(f"custom-op library not built: {error}")
    options = ort.SessionOptions()
    options.register_custom_ops_library(library)
    session = ort.InferenceSession(str(export_tiny("default") / "model.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    config = tiny_config("default")
    ids = tokens(config, 3, 9)
    logits = session.run(None, feeds_for(config, ids))[0]
    assert relative_error(logits, oracle("default", ids)) < FLOAT32_GRAPH


@pytest.mark.parametrize("name", ["default", "no_conv_bias", "untied_head", "one_layer", "falcon_mamba"])
def test_standard_graph_runs_on_plain_onnxruntime(export_tiny, name):
    folder = export_tiny(name, backend="standard")
    model = onnx.load(folder / "model.onnx")
    assert all(node.domain == "" for node in model.graph.node)
    assert json.loads((folder / "export_info.json").read_text())["needs_custom_ops"] is False
    config, session = tiny_config(name), cpu_session(folder)
    for length in (1, 4, 11):
        ids = tokens(config, 2, length, seed=length)
        assert relative_error(session.run(None, feeds_for(config, ids))[0], oracle(name, ids)) < FLOAT32_GRAPH


def test_chunked_prompt_equals_one_pass(export_tiny):
    config = tiny_config("three_layers")
    session = cpu_session(export_tiny("three_layers", backend="standard"))
    ids = tokens(config, 2, 12)
    whole = session.run(None, feeds_for(config, ids))
    pieces, states, start = [], None, 0
    for size in (1, 4, 7):
        out = session.run(None, feeds_for(config, ids[:, start:start + size], states=states))
        pieces.append(out[0])
        states = out[1:]
        start += size
    # Both runs are float32 with different step groupings: rounding only.
    assert relative_error(np.concatenate(pieces, axis=1), whole[0]) < 1e-5
    for got, expected in zip(states, whole[1:], strict=True):
        assert relative_error(got, expected) < 1e-5


def test_left_padded_batch_equals_rows_alone(export_tiny):
    config = tiny_config("default")
    session = cpu_session(export_tiny("default", backend="standard"))
    short, long = tokens(config, 1, 3, seed=1), tokens(config, 1, 8, seed=2)
    ids = np.concatenate([np.concatenate([np.zeros((1, 5), np.int64), short], axis=1), long])
    mask = np.concatenate([[[0] * 5 + [1] * 3], np.ones((1, 8))]).astype(np.int64)
    batch = session.run(None, feeds_for(config, ids, mask))
    for row, alone_ids in enumerate([short, long]):
        alone = session.run(None, feeds_for(config, alone_ids))
        assert relative_error(batch[0][row, -alone_ids.shape[1]:], alone[0][0]) < 1e-5
        for got, expected in zip(batch[1:], alone[1:], strict=True):
            assert relative_error(got[row], expected[0]) < 1e-5


def test_base_model_exports_last_hidden_state(export_tiny):
    folder = export_tiny("default", base=True, backend="standard")
    session = cpu_session(folder)
    assert session.get_outputs()[0].name == graph_io.LAST_HIDDEN_STATE
    config = tiny_config("default")
    ids = tokens(config, 2, 5)
    hidden = session.run(None, feeds_for(config, ids))[0]
    assert hidden.shape == (2, 5, config.hidden_size)
    assert relative_error(hidden, oracle("default", ids, base=True)) < FLOAT32_GRAPH
    assert json.loads((folder / "export_info.json").read_text())["head_output"] == "last_hidden_state"


def test_last_logits_only(export_tiny):
    config = tiny_config("default")
    session = cpu_session(export_tiny("default", backend="standard", logits="last"))
    ids = tokens(config, 2, 7)
    logits = session.run(None, feeds_for(config, ids))[0]
    assert logits.shape == (2, 1, config.vocab_size)
    assert relative_error(logits, oracle("default", ids)[:, -1:]) < FLOAT32_GRAPH


def test_float16_export(export_tiny):
    folder = export_tiny("default", backend="standard", dtype="fp16")
    session = cpu_session(folder)
    types = {i.name: i.type for i in session.get_inputs()}
    assert types["past.0.conv_state"] == "tensor(float16)" and types["past.0.ssm_state"] == "tensor(float)"
    config = tiny_config("default")
    ids = tokens(config, 2, 9)
    out = session.run(None, feeds_for(config, ids, conv_dtype=np.float16))
    assert out[0].dtype == np.float16 and out[2].dtype == np.float32
    # Oracle: the same float16-rounded weights in float64. float16 activations round to
    # 2^-11 (4.9e-4) at each of a few dozen ops of 2 layers: 1e-2 still catches wiring errors.
    assert relative_error(out[0], oracle("default", ids, half_weights=True)) < 1e-2


def test_in_memory_model_is_not_changed_by_a_float16_export(tmp_path):
    model = tiny_model("default")
    export(model, tmp_path / "out", ExportOptions(dtype="fp16", validate=False, show_progress=False))
    assert next(model.parameters()).dtype == torch.float32


def test_folder_source_copies_config_and_tokenizer(tmp_path):
    tokenizer = SHARED_DATA / "gpt-neox-20b-tokenizer.json"
    source = save_tiny_model(tmp_path / "src", tokenizer_json=tokenizer if tokenizer.is_file() else None)
    if not tokenizer.is_file():
        (source / "tokenizer.json").write_text("{}")
    folder = export(source, tmp_path / "out", ExportOptions(validate=False, show_progress=False))
    assert (folder / "tokenizer.json").read_bytes() == (source / "tokenizer.json").read_bytes()
    assert json.loads((folder / "config.json").read_text())["hidden_size"] == tiny_config().hidden_size
    info = json.loads((folder / "export_info.json").read_text())
    assert info["source"] == {"model": str(source), "class": "MambaForCausalLM", "random_weights": False,
                              "preset": None}


def test_preset_is_recorded_and_shown_as_random_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(presets, "preset_config", lambda name: tiny_config("default"))
    folder = export("preset:mamba-130m", tmp_path / "out", ExportOptions(validate=False))
    info = json.loads((folder / "export_info.json").read_text())
    assert info["source"] == {"model": "preset:mamba-130m", "class": "MambaForCausalLM", "random_weights": True,
                              "preset": "mamba-130m", "seed": presets.DEFAULT_SEED}
    assert "random weights" in capsys.readouterr().err


def test_progress_is_silent_when_off(tmp_path, capsys):
    export(tiny_model("one_layer"), tmp_path / "out", ExportOptions(validate=False, show_progress=False))
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_existing_output_is_refused_before_loading(tmp_path, monkeypatch):
    (tmp_path / "out").mkdir()
    monkeypatch.setattr(convert, "load", lambda source: pytest.fail("loaded before checking the output"))
    with pytest.raises(OutputExistsError):
        export("preset:mamba-130m", tmp_path / "out", ExportOptions(validate=False, show_progress=False))


def test_force_replaces_an_existing_export(export_tiny, tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "stale.txt").write_text("old")
    export(tiny_model("one_layer"), dest, ExportOptions(validate=False, show_progress=False, force=True))
    assert not (dest / "stale.txt").exists() and (dest / "model.onnx").is_file()


def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    def broken_save(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(convert, "_save_graph", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        export(tiny_model("one_layer"), tmp_path / "a" / "out",
               ExportOptions(validate=False, show_progress=False))
    assert list(tmp_path.iterdir()) == []


def test_large_models_keep_weights_in_external_data(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "EXTERNAL_DATA_THRESHOLD", 0)
    folder = export(tiny_model("one_layer"), tmp_path / "out",
                    ExportOptions(backend="standard", validate=False, show_progress=False))
    info = json.loads((folder / "export_info.json").read_text())
    assert info["external_data"] and (folder / info["external_data"]).is_file()
    config = tiny_config("one_layer")
    ids = tokens(config, 1, 4)
    logits = cpu_session(folder).run(None, feeds_for(config, ids))[0]
    assert relative_error(logits, oracle("one_layer", ids)) < FLOAT32_GRAPH


def test_validation_runs_and_is_recorded(tmp_path):
    folder = export(tiny_model("one_layer"), tmp_path / "out",
                    ExportOptions(backend="standard", validate=True, show_progress=False,
                                  check_lengths=(1, 5)))
    parity = json.loads((folder / "export_info.json").read_text())["parity"]
    assert parity["passed"] is True and parity["folder"] == str(folder)
    assert parity["results"]


def test_bfloat16_check_without_cuda_is_refused_before_loading(tmp_path, monkeypatch):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime here has CUDA: a bf16 export can be checked")
    monkeypatch.setattr(convert, "load", lambda source: pytest.fail("loaded before refusing"))
    with pytest.raises(BackendUnavailableError, match="bf16"):
        export("preset:mamba-130m", tmp_path / "out", ExportOptions(dtype="bf16", show_progress=False))
    assert list(tmp_path.iterdir()) == []


def test_bfloat16_export_without_check(export_tiny):
    folder = export_tiny("one_layer", dtype="bf16")
    model = onnx.load(folder / "model.onnx")
    conv_state = next(i for i in model.graph.input if i.name == "past.0.conv_state")
    assert conv_state.type.tensor_type.elem_type == onnx.TensorProto.BFLOAT16
    assert json.loads((folder / "export_info.json").read_text())["dtype"] == "bf16"
