"""Route one model's mixers through the SelectiveScan op for the length of a ``with`` block.

Inside ``routed_through_op(model, backend)`` every mixer of *that* model instance
computes with :func:`mamba_export.export.mixer.mixer_forward` (explicit states, the
torch op); other instances and the transformers classes are untouched, and the
original forwards come back when the block ends, even after an error.
"""

from __future__ import annotations

import contextlib
import types

import torch

from mamba_export.errors import MambaExportError
from mamba_export.export.architectures import Architecture, architecture_for_model, get_path
from mamba_export.export.mixer import (
    DT_WEIGHT_ATTR,
    PADDED_DT_WEIGHT_ATTR,
    STATE_MATRIX_ATTR,
    mixer_forward,
    padded_dt_weight,
)
from mamba_export.options import BACKENDS

_MISSING = object()


def _routed_forward(arch: Architecture, bcdt_eps: float, fuse_delta_proj: bool):
    def forward(self, hidden, attention_mask, conv_state, ssm_state):
        return mixer_forward(self, arch, hidden, attention_mask, conv_state, ssm_state, bcdt_eps,
                             fuse_delta_proj=fuse_delta_proj)

    return forward


@contextlib.contextmanager
def routed_through_op(model, backend: str = "custom", arch: Architecture | None = None,
                      fuse_delta_proj: bool = False):
    """Make ``model``'s mixers take ``(hidden, attention_mask, conv_state, ssm_state)`` and return
    ``(out, conv_state, ssm_state)``, computed through ``torch.ops.mamba_export.selective_scan``.

    Both backends trace the op; the standard backend rewrites the node afterwards.
    ``fuse_delta_proj``: the op projects the time step itself (delta_weight), no dt_proj MatMul.
    """
    if backend not in BACKENDS:
        raise MambaExportError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    arch = arch or architecture_for_model(model)
    bcdt_eps = float(getattr(model.config, arch.bcdt_norm_eps)) if arch.normalized_bcdt else 0.0
    mixers = arch.mixers(model)
    saved = [mixer.__dict__.get("forward", _MISSING) for mixer in mixers]
    forward = _routed_forward(arch, bcdt_eps, fuse_delta_proj)
    try:
        for mixer in mixers:
            mixer.forward = types.MethodType(forward, mixer)
            with torch.no_grad():
                a_log = get_path(mixer, arch.a_log)
                mixer.__dict__[STATE_MATRIX_ATTR] = -torch.exp(a_log.detach().float())
                if fuse_delta_proj:
                    dt_weight = get_path(mixer, arch.dt_proj).weight.detach()
                    mixer.__dict__[DT_WEIGHT_ATTR] = dt_weight.float().contiguous()
                elif not arch.normalized_bcdt:
                    mixer.__dict__[PADDED_DT_WEIGHT_ATTR] = padded_dt_weight(mixer, arch)
        yield model
    finally:
        for mixer, previous in zip(mixers, saved, strict=True):
            mixer.__dict__.pop(STATE_MATRIX_ATTR, None)
            mixer.__dict__.pop(PADDED_DT_WEIGHT_ATTR, None)
            mixer.__dict__.pop(DT_WEIGHT_ATTR, None)
            if previous is _MISSING:
                mixer.__dict__.pop("forward", None)
            else:
                mixer.forward = previous
