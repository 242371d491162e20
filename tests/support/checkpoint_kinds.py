"""Saved tiny checkpoints of the kinds users bring besides a plain MambaForCausalLM.

A FalconMamba causal LM with an untied head (a tied random tiny model repeats one
token, so greedy comparisons could not fail) and base models without a head, each
saved with ``save_pretrained`` the way a user would before calling the exporter.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tests.support.tiny_models import tiny_config, tiny_model


def falcon_causal_lm(seed: int = 3):
    """A tiny FalconMambaForCausalLM (untied head, float32, eval)."""
    from transformers import FalconMambaForCausalLM

    config = tiny_config("falcon_mamba")
    config.tie_word_embeddings = False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FalconMambaForCausalLM(config)
    return model.eval()


def save_falcon_causal_lm(folder: Path, seed: int = 3) -> Path:
    falcon_causal_lm(seed).save_pretrained(folder)
    return Path(folder)


def save_base_model(folder: Path, name: str = "default", seed: int = 0) -> Path:
    """``MambaModel`` (name "default") or ``FalconMambaModel`` (name "falcon_mamba"), saved."""
    tiny_model(name, base=True, seed=seed).save_pretrained(folder)
    return Path(folder)
