"""Turn what the user names (hub id, folder, preset, in-memory model) into a model to export.

The class is chosen from the config's ``architectures`` list (a causal LM has a
head and gives ``logits``; a base model gives ``last_hidden_state``) and the
architecture from its ``model_type``. Every way loading can go wrong ends in a
typed error that names the source and the cause.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from mamba_export.errors import CheckpointError, UnsupportedModelError
from mamba_export.export import presets
from mamba_export.export.architectures import (
    Architecture,
    architecture_for_model,
    architecture_for_model_type,
)


@dataclass
class LoadedModel:
    model: torch.nn.Module
    arch: Architecture
    source: str  # what the user named ("<in-memory model>" for a model object)
    local_dir: Path | None  # folder holding config/tokenizer files, if any
    random_weights: bool
    preset: str | None
    seed: int | None = None
    revision: str | None = None  # the hub revision asked for, if any
    adapter: str | None = None  # the LoRA adapter merged into the weights, if any
    adapter_base: str | None = None  # the base model that adapter records


def _read_config_dict(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder} has no config.json; expected a saved transformers model folder")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not readable JSON: {error}") from error


def _class_name(arch: Architecture, config_dict: dict) -> str:
    declared = config_dict.get("architectures") or [arch.causal_lm_class]
    for name in declared:
        if name in (arch.causal_lm_class, arch.base_model_class):
            return name
    raise UnsupportedModelError(
        f"config architectures {declared} name no class the exporter supports for model type "
        f"{arch.name!r}; supported: {arch.causal_lm_class}, {arch.base_model_class}")


def _from_pretrained(class_name: str, location: str, revision: str | None = None):
    import transformers
    from transformers.utils import logging as hf_logging

    model_class = getattr(transformers, class_name)
    # The export shows its own progress; transformers' per-weight bar would interleave with it.
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return _checked_load(model_class, location, revision)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()


def _checked_load(model_class, location: str, revision: str | None = None):
    extra = {} if revision is None else {"revision": revision}
    try:
        model, info = model_class.from_pretrained(location, dtype=torch.float32, output_loading_info=True, **extra)
    except (OSError, ValueError, RuntimeError, EnvironmentError) as error:
        raise CheckpointError(f"cannot load the weights of {location!r}: {_one_line(error)}") from error
    except Exception as error:  # safetensors raises its own error type for corrupt files
        if type(error).__name__ == "SafetensorError":
            raise CheckpointError(f"the weights of {location!r} are corrupt: {error}") from error
        raise
    missing = [key for key in info.get("missing_keys", ()) if key]
    if missing:
        raise CheckpointError(
            f"the checkpoint {location!r} lacks {len(missing)} weights (e.g. {missing[:3]}); "
            "it is incomplete or of another architecture")
    return model.eval()


def _load_folder(folder: Path) -> LoadedModel:
    config_dict = _read_config_dict(folder)
    arch = architecture_for_model_type(config_dict.get("model_type", "<none>"))
    model = _from_pretrained(_class_name(arch, config_dict), str(folder))
    return LoadedModel(model, arch, str(folder), folder, random_weights=False, preset=None)


def _load_hub(repo_id: str, revision: str | None = None) -> LoadedModel:
    at = repr(repo_id) if revision is None else f"{repo_id!r} at revision {revision!r}"
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(repo_id, **({} if revision is None else {"revision": revision}))
    except (OSError, ValueError, *_config_validation_errors()) as error:
        raise CheckpointError(
            f"{at} is neither a local model folder nor a loadable hub model: {_one_line(error)}") from error
    arch = architecture_for_model_type(config.model_type)
    model = _from_pretrained(_class_name(arch, config.to_dict()), repo_id, revision)
    return LoadedModel(model, arch, repo_id, _hub_snapshot_dir(repo_id, revision), random_weights=False,
                       preset=None, revision=revision)


def _config_validation_errors() -> tuple:
    """The error huggingface_hub raises for a config whose values contradict each other."""
    try:
        from huggingface_hub.errors import StrictDataclassClassValidationError
    except ImportError:
        return ()
    return (StrictDataclassClassValidationError,)


def _one_line(error: Exception) -> str:
    """transformers' messages span lines; the CLI prints one."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def _hub_snapshot_dir(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot folder of a hub model (for its tokenizer files), if any."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return Path(cached).parent if isinstance(cached, str) else None


def load(source, seed: int = presets.DEFAULT_SEED, revision: str | None = None) -> LoadedModel:
    """Load ``source``: an in-memory model, ``preset:NAME``, a local folder or a hub id
    (at ``revision``, which only a hub id takes)."""
    if revision is not None and not (isinstance(source, str) and _looks_like_hub_id(source)):
        raise UnsupportedModelError(f"a revision ({revision!r}) applies to a hub id only, not to {source!r}")
    if isinstance(source, torch.nn.Module):
        arch = architecture_for_model(source)
        return LoadedModel(source.eval(), arch, "<in-memory model>", None, random_weights=False, preset=None)
    if not isinstance(source, (str, Path)):
        raise UnsupportedModelError(
            "model must be a hub id, a folder, a preset name or a transformers model, "
            f"got {type(source).__name__}")
    if presets.is_preset(str(source)):
        name = presets.preset_name(str(source))
        model = presets.build_preset(name, seed)
        return LoadedModel(model, architecture_for_model(model), f"{presets.PREFIX}{name}", None,
                           random_weights=True, preset=name, seed=seed)
    path = Path(source).expanduser()
    if path.is_dir():
        return _load_folder(path)
    if path.exists() or str(source).startswith((".", "/", "~")) or str(source).count("/") > 1:
        raise CheckpointError(f"{source} is not a model folder (no such directory)")
    return _load_hub(str(source), revision)


def _looks_like_hub_id(source: str) -> bool:
    return not presets.is_preset(source) and not Path(source).expanduser().exists() and source.count("/") <= 1
