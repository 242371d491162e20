"""Reading an exported folder's metadata with errors that say what is wrong.

An exported folder holds ``model.onnx`` and ``export_info.json`` (see
docs/deploy.md). The CLI and the runtime both start here, so a wrong path or a
half-copied folder gives the same clear message everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

from mamba_export.errors import ExportFolderError

INFO_FILE = "export_info.json"
MODEL_FILE = "model.onnx"


def read_export_info(folder) -> dict:
    """Return the parsed ``export_info.json`` of ``folder`` or raise ExportFolderError."""
    path = Path(folder)
    if not path.exists():
        raise ExportFolderError(f"{path} does not exist; create it with `mamba-export export --model ... {path}`")
    if not path.is_dir():
        raise ExportFolderError(f"{path} is a file, expected a folder written by `mamba-export export`")
    info_path = path / INFO_FILE
    if not info_path.is_file():
        raise ExportFolderError(f"{path} has no {INFO_FILE}: it is not a folder written by `mamba-export export`")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ExportFolderError(f"{info_path} cannot be read: {error}") from error
    if not isinstance(info, dict) or "backend" not in info:
        raise ExportFolderError(f"{info_path} is not an export description (no 'backend' key)")
    model_file = path / info.get("model_file", MODEL_FILE)
    if not model_file.is_file():
        raise ExportFolderError(f"{path} has no {model_file.name}: the export is incomplete; export again")
    return info
