"""Loading sources: folders, presets, in-memory models, and every way it can fail."""

from __future__ import annotations

import json

import pytest
import torch

from mamba_export.errors import CheckpointError, UnsupportedModelError
from mamba_export.export.loading import load
from tests.support.tiny_models import save_tiny_model, tiny_model


def test_folder_loads_the_causal_lm(tiny_model_dir):
    loaded = load(tiny_model_dir)
    assert type(loaded.model).__name__ == "MambaForCausalLM"
    assert loaded.arch.name == "mamba" and loaded.local_dir == tiny_model_dir
    assert not loaded.random_weights and loaded.preset is None
    expected = tiny_model("default")
    torch.testing.assert_close(loaded.model.lm_head.weight, expected.lm_head.weight)


def test_base_model_folder_loads_the_base_class(tmp_path):
    loaded = load(save_tiny_model(tmp_path / "base", base=True))
    assert type(loaded.model).__name__ == "MambaModel"


def test_falcon_mamba_folder(tmp_path):
    loaded = load(save_tiny_model(tmp_path / "falcon", "falcon_mamba"))
    assert loaded.arch.name == "falcon_mamba"


def test_in_memory_model_is_used_as_given():
    model = tiny_model("default")
    loaded = load(model)
    assert loaded.model is model and loaded.local_dir is None


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such directory"):
        load(tmp_path / "absent")


def test_folder_without_config(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        load(tmp_path)


def test_unsupported_model_type_names_the_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(UnsupportedModelError, match="llama.*mamba"):
        load(tmp_path)


def test_unsupported_class_in_config(tmp_path):
    folder = save_tiny_model(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["MambaForSequenceClassification"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match="MambaForSequenceClassification"):
        load(folder)


def test_missing_weights_file(tmp_path):
    folder = save_tiny_model(tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError):
        load(folder)


def test_corrupt_weights_file(tmp_path):
    folder = save_tiny_model(tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError):
        load(folder)


def test_weights_of_another_shape(tmp_path):
    folder = save_tiny_model(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["hidden_size"] = 24
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError):
        load(folder)


def test_incomplete_checkpoint(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = save_tiny_model(tmp_path / "m")
    weights = load_file(folder / "model.safetensors")
    dropped = next(k for k in weights if "A_log" in k)
    del weights[dropped]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="lacks"):
        load(folder)


def test_not_a_model_object():
    with pytest.raises(UnsupportedModelError, match="int"):
        load(42)
