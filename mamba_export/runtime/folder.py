"""Reading an exported folder: the files the runtime needs and what they promise.

The runtime trusts ``export_info.json`` for everything it cannot read from the
graph itself (which backend, whether the custom-op library is needed, the state
sizes), so this module checks that the folder is complete and the record is one
this version understands before any session is built. Every problem is an
:class:`ExportFolderError` that names the folder, the file and the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mamba_export import graph_io
from mamba_export.errors import ExportFolderError

MODEL_FILE = "model.onnx"
CONFIG_FILE = "config.json"
INFO_FILE = "export_info.json"
GENERATION_CONFIG_FILE = "generation_config.json"
FORMAT_VERSION = 1
REQUIRED_FILES = (MODEL_FILE, CONFIG_FILE, INFO_FILE)
REQUIRED_INFO_KEYS = (
    "format_version", "model_class", "backend", "needs_custom_ops", "dtype", "num_layers",
    "intermediate_size", "conv_kernel", "state_size", "vocab_size",
)
MODEL_CLASSES = ("MambaForCausalLM", "MambaModel")


@dataclass(frozen=True)
class ExportFolder:
    """A checked export folder: its path, ``export_info.json`` and ``config.json``."""

    path: Path
    info: dict
    config: dict
    generation_config: dict

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def num_layers(self) -> int:
        return int(self.info["num_layers"])

    @property
    def dtype(self) -> str:
        return self.info["dtype"]

    @property
    def is_causal_lm(self) -> bool:
        return self.info["model_class"] == "MambaForCausalLM"

    @property
    def head_output(self) -> str:
        return graph_io.LOGITS if self.is_causal_lm else graph_io.LAST_HIDDEN_STATE

    @property
    def logits_mode(self) -> str:
        """"all" (one row per input position) or "last" (only the last position)."""
        return self.info.get("logits", "all")

    def state_shapes(self, batch: int) -> dict:
        return graph_io.state_shapes(batch, int(self.info["intermediate_size"]),
                                     int(self.info["conv_kernel"]), int(self.info["state_size"]))

    def special_token(self, name: str):
        """``eos_token_id`` / ``pad_token_id`` from generation_config.json, else config.json."""
        value = self.generation_config.get(name)
        return self.config.get(name) if value is None else value


def _read_json(folder: Path, name: str, required: bool = True) -> dict:
    path = folder / name
    if not path.is_file():
        if not required:
            return {}
        raise ExportFolderError(f"{folder} is not a complete export: {name} is missing "
                                f"(re-export with `mamba-export export --model MODEL {folder} --force`)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ExportFolderError(f"{path} is not readable JSON ({error}); re-export the folder") from error
    if not isinstance(data, dict):
        raise ExportFolderError(f"{path} holds a {type(data).__name__}, expected a JSON object")
    return data


def _check_info(folder: Path, info: dict) -> None:
    missing = [key for key in REQUIRED_INFO_KEYS if key not in info]
    if missing:
        raise ExportFolderError(f"{folder / INFO_FILE} lacks the keys {missing}; re-export the folder")
    if info["format_version"] != FORMAT_VERSION:
        raise ExportFolderError(
            f"{folder / INFO_FILE} has format_version {info['format_version']!r}, this version of "
            f"mamba-export reads {FORMAT_VERSION}; re-export with this version")
    if info["model_class"] not in MODEL_CLASSES:
        raise ExportFolderError(f"{folder / INFO_FILE} has model_class {info['model_class']!r}, "
                                f"expected one of {', '.join(MODEL_CLASSES)}")


def load_export_folder(path) -> ExportFolder:
    """Check ``path`` holds model.onnx, config.json and a readable export_info.json."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise ExportFolderError(f"export folder {folder} {what}; give the folder written by "
                                "`mamba-export export`")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ExportFolderError(f"{folder} is not a complete export: missing {', '.join(missing)} "
                                f"(re-export with `mamba-export export --model MODEL {folder} --force`)")
    info = _read_json(folder, INFO_FILE)
    _check_info(folder, info)
    return ExportFolder(folder, info, _read_json(folder, CONFIG_FILE),
                        _read_json(folder, GENERATION_CONFIG_FILE, required=False))
