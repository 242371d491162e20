"""A PEFT LoRA adapter merged into its base model's weights before export.

The exported graph has no adapter of its own: ``W + scale * B @ A`` is folded into
each targeted weight (PEFT's ``merge_and_unload``), so the folder runs like any
other export. The merge happens in float32 on the loaded model, before the cast to
the export dtype. An adapter that does not fit the model (other shapes, modules the
model lacks) fails with a message naming both and the base model the adapter
records. ``peft`` is an optional dependency (``pip install 'mamba-export[lora]'``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

from mamba_export.errors import BackendUnavailableError, CheckpointError, UnsupportedModelError
from mamba_export.export.loading import LoadedModel

ADAPTER_CONFIG = "adapter_config.json"


def read_adapter_config(path) -> dict:
    """The adapter folder's adapter_config.json, checked to be a LoRA adapter."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"adapter {folder} is not a folder; give the folder PEFT's save_pretrained wrote")
    config_path = folder / ADAPTER_CONFIG
    if not config_path.is_file():
        raise CheckpointError(f"adapter folder {folder} has no {ADAPTER_CONFIG}; is it a PEFT adapter?")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{config_path} is not readable JSON: {error}") from error
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        kind = config.get("peft_type") if isinstance(config, dict) else type(config).__name__
        raise UnsupportedModelError(f"adapter {folder} is a {kind} adapter; only LoRA adapters can be merged")
    return config


def merge_adapter(loaded: LoadedModel, path) -> LoadedModel:
    """``loaded`` with the LoRA adapter at ``path`` merged into its weights.

    A model the caller passed in memory is copied first, so it is left as given.
    """
    folder = Path(path).expanduser()
    config = read_adapter_config(folder)
    try:
        from peft import PeftModel
    except ImportError as error:
        raise BackendUnavailableError("merging an adapter needs peft: pip install 'mamba-export[lora]' "
                                      "(or pip install peft)") from error
    model = copy.deepcopy(loaded.model) if loaded.local_dir is None and loaded.preset is None else loaded.model
    base_name = config.get("base_model_name_or_path")
    try:
        peft_model = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"the adapter {folder} does not fit {loaded.source}: {_first_line(error)} (the adapter was made "
            f"for base model {base_name!r}; export that model with it)") from error
    merged = peft_model.merge_and_unload().eval()
    return replace(loaded, model=merged, adapter=str(folder.absolute()), adapter_base=base_name)


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return "; ".join(lines[:3]) if lines else type(error).__name__
