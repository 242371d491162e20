"""Which PyTorch model an export is checked against."""

from __future__ import annotations

import json
import shutil

import pytest

from mamba_export.errors import CheckpointError
from mamba_export.parity.reference import resolve_reference
from mamba_export.runtime.folder import load_export_folder
from tests.support.tiny_models import save_tiny_model, tiny_model


@pytest.fixture
def folder_with_source(exported, tmp_path):
    """A copy of the tiny export whose recorded source is set by the test."""
    target = tmp_path / "export"
    shutil.copytree(exported("standard"), target)

    def with_source(**source):
        info = json.loads((target / "export_info.json").read_text())
        info["source"] = {"model": None, "random_weights": False, "preset": None, **source}
        (target / "export_info.json").write_text(json.dumps(info))
        return load_export_folder(target)

    return with_source


def test_model_object(folder_with_source):
    model = tiny_model()
    reference = resolve_reference(model, folder_with_source(model="<in-memory model>"))
    assert reference.model is model and "in memory" in reference.description


def test_in_memory_source_asks_for_the_model(folder_with_source):
    with pytest.raises(CheckpointError, match="model object in memory.*--model"):
        resolve_reference(None, folder_with_source(model="<in-memory model>"))


def test_preset_without_seed_asks_for_the_model(folder_with_source):
    folder = folder_with_source(model="preset:mamba-130m", random_weights=True, preset="mamba-130m")
    with pytest.raises(CheckpointError, match="without its seed.*--model"):
        resolve_reference(None, folder)


def test_random_weights_without_preset_ask_for_the_model(folder_with_source):
    with pytest.raises(CheckpointError, match="random weights"):
        resolve_reference(None, folder_with_source(model="/somewhere", random_weights=True))


def test_recorded_folder_is_loaded(folder_with_source, tmp_path):
    source = save_tiny_model(tmp_path / "source")
    reference = resolve_reference(None, folder_with_source(model=str(source)))
    assert reference.description == str(source)
    assert type(reference.model).__name__ == "MambaForCausalLM"


def test_presets_are_rebuilt_with_the_recorded_seed(folder_with_source, monkeypatch):
    from mamba_export.export import presets

    built = []

    def fake_build(name, seed=presets.DEFAULT_SEED):
        built.append((name, seed))
        return tiny_model()

    monkeypatch.setattr(presets, "build_preset", fake_build)
    folder = folder_with_source(model="preset:mamba-130m", random_weights=True, preset="mamba-130m", seed=7)
    reference = resolve_reference(None, folder)
    assert built == [("mamba-130m", 7)] and "seed 7" in reference.description
    resolve_reference("preset:mamba-130m", folder)  # named explicitly: the export's seed still applies
    resolve_reference("preset:mamba-370m", folder)  # another preset: its default seed
    assert built[1:] == [("mamba-130m", 7), ("mamba-370m", presets.DEFAULT_SEED)]
