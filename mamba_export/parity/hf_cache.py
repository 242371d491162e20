"""transformers' Mamba cache, driven the same way across 5.x releases.

The parity baseline advances transformers' own cache one token at a time. Its
keyword and output field are ``cache_params`` in 5.17 and ``cache`` in later
releases, and the per-layer accessors moved too; a wrong keyword is swallowed by
``**kwargs`` and would silently run without the cache. So the name is read from
the forward signature, and a model that accepts none of the known names is an error.
"""

from __future__ import annotations

import inspect

from mamba_export.errors import UnsupportedModelError

CACHE_NAMES = ("cache", "cache_params")


def cache_keyword(module) -> str:
    """The keyword ``module.forward`` takes its Mamba cache by."""
    parameters = inspect.signature(module.forward).parameters
    for name in CACHE_NAMES:
        if name in parameters:
            return name
    raise UnsupportedModelError(
        f"{type(module).__name__}.forward takes none of {', '.join(CACHE_NAMES)}: "
        "this transformers release is not supported (5.x is)")


def output_cache(output):
    """The cache returned in a model output (None when use_cache was off)."""
    for name in CACHE_NAMES:
        value = getattr(output, name, None)
        if value is not None:
            return value
    return None


def layer_states(cache, layer: int) -> tuple:
    """(conv_state (B, D, conv_kernel), ssm_state (B, D, N)) of one layer."""
    if hasattr(cache, "get_conv_state"):
        return cache.get_conv_state(layer), cache.get_recurrent_state(layer)
    entry = cache.layers[layer]
    return entry.conv_states[0], entry.recurrent_states[0]
