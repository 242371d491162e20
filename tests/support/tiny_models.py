"""Tiny Mamba checkpoints saved locally, for tests that need a real model folder.

Each config exercises one way real checkpoints differ (odd widths, state size,
explicit time-step rank, biases, untied head, residual dtype, depth), so the
exporter is tested on the variations and not only on the defaults. Building and
saving one takes well under a second.
"""

from __future__ import annotations

from pathlib import Path

import torch

# name -> (architecture name, config overrides); every registered architecture needs one.
TINY_CONFIGS = {
    "default": ("mamba", {}),
    "odd_hidden": ("mamba", {"hidden_size": 13}),
    "state_4": ("mamba", {"state_size": 4}),
    "explicit_rank": ("mamba", {"time_step_rank": 5}),
    "use_bias": ("mamba", {"use_bias": True}),
    "no_conv_bias": ("mamba", {"use_conv_bias": False}),
    "untied_head": ("mamba", {"tie_word_embeddings": False}),
    "residual_model_dtype": ("mamba", {"residual_in_fp32": False}),
    "one_layer": ("mamba", {"num_hidden_layers": 1}),
    "three_layers": ("mamba", {"num_hidden_layers": 3}),
    "falcon_mamba": ("falcon_mamba", {}),
}

_BASE = dict(vocab_size=61, hidden_size=16, state_size=8, num_hidden_layers=2, expand=2, conv_kernel=4,
             pad_token_id=0, bos_token_id=0, eos_token_id=0)

_CLASSES = {
    "mamba": ("MambaConfig", "MambaForCausalLM", "MambaModel"),
    "falcon_mamba": ("FalconMambaConfig", "FalconMambaForCausalLM", "FalconMambaModel"),
}


def tiny_config(name: str = "default"):
    import transformers

    architecture, overrides = TINY_CONFIGS[name]
    config_class = getattr(transformers, _CLASSES[architecture][0])
    return config_class(**{**_BASE, **overrides})


def _perturb(model, seed: int) -> None:
    """Move the parameters transformers initialises to constants (D = 1, zero biases, ...)
    off those values, so a wrong use of them changes the output."""
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("mixer.D", ".bias", "norm.weight", "norm_f.weight")):
                param.add_(0.1 * torch.randn(param.shape, generator=generator))


def tiny_model(name: str = "default", base: bool = False, seed: int = 0):
    """A tiny model in memory (float32, eval mode); ``base`` gives the head-less class."""
    import transformers

    architecture = TINY_CONFIGS[name][0]
    classes = _CLASSES[architecture]
    model_class = getattr(transformers, classes[2] if base else classes[1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(tiny_config(name))
    _perturb(model, seed)
    return model.eval()


def save_tiny_model(folder: Path, name: str = "default", base: bool = False, seed: int = 0,
                    tokenizer_json: Path | None = None) -> Path:
    """Save a tiny model (and optionally a tokenizer.json) into ``folder``; returns the folder."""
    folder = Path(folder)
    tiny_model(name, base=base, seed=seed).save_pretrained(folder)
    if tokenizer_json is not None:
        (folder / "tokenizer.json").write_bytes(Path(tokenizer_json).read_bytes())
    return folder
