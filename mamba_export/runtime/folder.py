"""Reading an exported folder: the files the runtime needs and what they promise.

The runtime trusts ``export_info.json`` for everything it cannot read from the
graph itself (which backend, whether the custom-op library is needed, the state
sizes, which output the graph has), so this module checks that the folder is
complete before any session is built. The file names and the record's format are
owned by ``mamba_export/folder_format.py``; every problem is an
:class:`ExportFolderError` that names the folder, the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mamba_export import folder_format, graph_io
from mamba_export.errors import ExportFolderError


@dataclass(frozen=True)
class ExportFolder:
    """A checked export folder: its path, ``export_info.json`` and ``config.json``."""

    path: Path
    info: dict
    config: dict
    generation_config: dict

    @property
    def model_path(self) -> Path:
        return self.path / folder_format.MODEL_FILE

    @property
    def num_layers(self) -> int:
        return int(self.info["num_layers"])

    @property
    def dtype(self) -> str:
        return self.info["dtype"]

    @property
    def head_output(self) -> str:
        """The graph's first output: ``logits`` (a causal LM) or ``last_hidden_state`` (a base model)."""
        return self.info["head_output"]

    @property
    def is_causal_lm(self) -> bool:
        return self.head_output == graph_io.LOGITS

    @property
    def has_next_tokens(self) -> bool:
        """Whether the graph also outputs ``next_tokens`` (the greedy choice; ``--next-tokens``)."""
        return bool(self.info.get("next_tokens", False))

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


def load_export_folder(path) -> ExportFolder:
    """Check ``path`` holds model.onnx, config.json and a readable export_info.json."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise ExportFolderError(f"export folder {folder} {what}; give the folder written by "
                                "`mamba-export export`")
    missing = [name for name in folder_format.REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ExportFolderError(f"{folder} is not a complete export: missing {', '.join(missing)} "
                                f"(re-export with `mamba-export export --model MODEL {folder} --force`)")
    return ExportFolder(folder, folder_format.read_info(folder),
                        folder_format.read_json(folder, folder_format.CONFIG_FILE),
                        folder_format.read_json(folder, folder_format.GENERATION_CONFIG_FILE, required=False))
