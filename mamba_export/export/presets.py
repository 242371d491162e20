"""Built-in presets: the published Mamba configurations with random (seeded) weights.

``preset:mamba-130m`` .. ``preset:mamba-2.8b`` have exactly the shapes of the
state-spaces/mamba-*-hf checkpoints, so exporting, benchmarking and embedding can
be tried without downloading weights. Their outputs are meaningless text; every
place that shows or records a preset says it holds random weights.
"""

from __future__ import annotations

import math

import torch

from mamba_export.errors import UnsupportedModelError

PREFIX = "preset:"
DEFAULT_SEED = 0

# name -> (hidden_size, num_hidden_layers), as published for state-spaces/mamba-*-hf.
_SIZES = {
    "mamba-130m": (768, 24),
    "mamba-370m": (1024, 48),
    "mamba-790m": (1536, 48),
    "mamba-1.4b": (2048, 48),
    "mamba-2.8b": (2560, 64),
}
PRESETS = tuple(_SIZES)


def is_preset(source) -> bool:
    return isinstance(source, str) and source.startswith(PREFIX)


def preset_name(source: str) -> str:
    """'preset:mamba-130m' -> 'mamba-130m', checked."""
    name = source[len(PREFIX):] if source.startswith(PREFIX) else source
    if name not in _SIZES:
        raise UnsupportedModelError(
            f"unknown preset {name!r}; the presets are {', '.join(PREFIX + p for p in PRESETS)}")
    return name


def preset_config(name: str):
    """The MambaConfig of a preset (fields as in the published config.json files)."""
    from transformers import MambaConfig

    hidden_size, num_layers = _SIZES[preset_name(name)]
    return MambaConfig(
        vocab_size=50280,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        state_size=16,
        expand=2,
        conv_kernel=4,
        time_step_rank=math.ceil(hidden_size / 16),
        layer_norm_epsilon=1e-5,
        use_bias=False,
        use_conv_bias=True,
        residual_in_fp32=True,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        architectures=["MambaForCausalLM"],
    )


def build_preset(name: str, seed: int = DEFAULT_SEED):
    """A MambaForCausalLM with the preset's shapes and weights drawn from ``seed`` (float32, CPU).

    The same name and seed always give the same weights; the global RNG is left as it was.
    """
    from transformers import MambaForCausalLM

    config = preset_config(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MambaForCausalLM(config)
    return model.eval()
