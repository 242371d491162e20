"""Loading an export folder: complete folders load, broken ones say what is wrong."""

from __future__ import annotations

import json
import shutil

import pytest

from mamba_export.errors import ExportFolderError
from mamba_export.runtime.folder import load_export_folder


@pytest.fixture
def copy(exported, tmp_path):
    """A private copy of the standard tiny export, free to break."""
    target = tmp_path / "export"
    shutil.copytree(exported("standard"), target)
    return target


def test_complete_folder_loads(exported):
    folder = load_export_folder(exported("standard"))
    assert folder.num_layers == 2 and folder.dtype == "fp32" and folder.is_causal_lm
    assert folder.head_output == "logits" and folder.logits_mode == "all"
    assert folder.state_shapes(3) == {"conv_state": (3, 32, 3), "ssm_state": (3, 32, 8)}
    assert folder.special_token("eos_token_id") == 0


def test_missing_folder(tmp_path):
    with pytest.raises(ExportFolderError, match="does not exist"):
        load_export_folder(tmp_path / "nowhere")


def test_file_instead_of_folder(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("")
    with pytest.raises(ExportFolderError, match="is a file"):
        load_export_folder(path)


@pytest.mark.parametrize("name", ["model.onnx", "config.json", "export_info.json"])
def test_missing_file(copy, name):
    (copy / name).unlink()
    with pytest.raises(ExportFolderError, match=f"missing {name}"):
        load_export_folder(copy)


def test_unreadable_info(copy):
    (copy / "export_info.json").write_text("{not json")
    with pytest.raises(ExportFolderError, match="not readable JSON"):
        load_export_folder(copy)


def test_info_lacking_keys(copy):
    info = json.loads((copy / "export_info.json").read_text())
    del info["num_layers"], info["dtype"]
    (copy / "export_info.json").write_text(json.dumps(info))
    with pytest.raises(ExportFolderError, match=r"lacks the keys \['dtype', 'num_layers'\]"):
        load_export_folder(copy)


def test_future_format_version(copy):
    info = json.loads((copy / "export_info.json").read_text())
    info["format_version"] = 3
    (copy / "export_info.json").write_text(json.dumps(info))
    with pytest.raises(ExportFolderError, match="format_version 3.*reads 1, 2"):
        load_export_folder(copy)


def test_generation_config_is_optional(copy):
    (copy / "generation_config.json").unlink()
    folder = load_export_folder(copy)
    assert folder.generation_config == {}
    assert folder.special_token("eos_token_id") == 0  # from config.json
