"""Which PyTorch model an export is checked against.

The caller may name it (hub id, folder, ``preset:NAME``, or a model object); by
default it is the source recorded in ``export_info.json``. A preset's random
weights are re-created from the name and the seed recorded at export time; an
export made from an in-memory model, or a random-weight source without a seed,
cannot be re-created and the check asks for the model explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mamba_export.errors import CheckpointError
from mamba_export.runtime.folder import ExportFolder

IN_MEMORY = "<in-memory model>"


@dataclass
class Reference:
    """The reference model (float32 or the export dtype, CPU, eval mode) and how it was found."""

    model: torch.nn.Module
    description: str


def _ask_for_model(folder: ExportFolder, why: str) -> CheckpointError:
    return CheckpointError(
        f"cannot re-create the model {folder.path} was exported from: {why}; name it with "
        "`mamba-export check DIR --model MODEL` (Python: validate(DIR, reference=MODEL))")


def _from_source(folder: ExportFolder):
    """The recorded source as something ``loading.load`` takes, and the seed for presets."""
    source = folder.info.get("source") or {}
    name = source.get("model")
    if source.get("preset"):
        if source.get("seed") is None:
            raise _ask_for_model(folder, f"preset {source['preset']!r} was recorded without its seed")
        return f"preset:{source['preset']}", int(source["seed"])
    if not name or name == IN_MEMORY:
        raise _ask_for_model(folder, "it was exported from a model object in memory")
    if source.get("random_weights"):
        raise _ask_for_model(folder, f"{name} has random weights and no recorded seed")
    return name, None


def _seed_for(folder: ExportFolder, preset_source: str) -> int:
    """The recorded seed when the named preset is the export's own, else the default seed."""
    from mamba_export.export import presets

    source = folder.info.get("source") or {}
    if source.get("preset") == presets.preset_name(preset_source) and source.get("seed") is not None:
        return int(source["seed"])
    return presets.DEFAULT_SEED


def resolve_reference(reference, folder: ExportFolder) -> Reference:
    """Load the reference for ``folder``: ``reference`` if given, else the recorded source."""
    from mamba_export.export import loading, presets

    if isinstance(reference, torch.nn.Module):
        return Reference(reference.eval(), f"{type(reference).__name__} (in memory)")
    if reference is None:
        source, seed = _from_source(folder)
    else:
        source = str(reference)
        seed = _seed_for(folder, source) if presets.is_preset(source) else None
    loaded = loading.load(source) if seed is None else loading.load(source, seed=seed)
    description = loaded.source + (f" (random weights, seed {seed})" if loaded.random_weights else "")
    return Reference(loaded.model, description)
