"""One Mamba mixer with explicit states, computed through the CausalConv1d and SelectiveScan torch ops.

This mirrors transformers' ``MambaMixer.forward`` (eval path) step by step with the
mixer's own weights, but takes the conv and SSM states as tensors and returns the
new ones, instead of reading and writing a cache object, so a single traced graph
serves prefill, chunked prefill and decode.

Every tensor stays (batch, sequence, channels), the layout of the matrix products, so
the graph needs no transpose, and nothing is split: the conv op reads the x half of the
``in_proj`` output at an offset (x_offset 0), the scan reads the gate z as its second
half (z_offset D) and B and C as windows of the ``x_proj`` output (b_offset R, c_offset
R + N), and dt_proj multiplies the whole x_proj output by its weight zero-padded to
(D, R + 2N), which gives the same delta. Per layer that is in_proj, CausalConv1d,
x_proj, dt_proj, SelectiveScan and out_proj. With ``fuse_delta_proj`` there is no dt_proj
node: the scan reads x_dt from the x_proj output itself (delta_offset 0) and multiplies it by
dt_proj's weight (delta_weight, float32), so a layer is in_proj, CausalConv1d, x_proj,
SelectiveScan and out_proj. Where B, C and dt are RMS-normalised
(``arch.normalized_bcdt``) the x_proj output is split for the norms as before.

Padding: transformers zeroes padded positions of the mixer input and of the conv
output. The conv op treats masked inputs as zeros and writes zeros there, which gives
every state and every kept position the same values; only outputs at padded positions
differ (the gate there is in_proj of the unmasked input). When ``in_proj`` has a bias,
transformers' conv sees that bias at padded positions, not zero; there the mixer masks
its input and the conv output as transformers does and gives the conv no mask.
"""

from __future__ import annotations

import torch

import mamba_export.ops.torch_op  # noqa: F401  (registers the mamba_export torch ops)
from mamba_export.errors import UnsupportedModelError
from mamba_export.export.architectures import Architecture, get_path
from mamba_export.ops.causal_conv import ACTIVATIONS
from mamba_export.ops.selective_scan import LAYOUT_CHANNELS_LAST, WHOLE

# The mixer attribute holding A = -exp(A_log) in float32 while routed_through_op routes the
# mixers: a plain tensor attribute is traced as a constant, so the graph holds A itself
# instead of an Exp and a Neg per layer (the exporter folds only small weights).
STATE_MATRIX_ATTR = "_mamba_export_a"
# The mixer attribute holding dt_proj's weight zero-padded to the width of the x_proj output,
# (D, R + 2N), while routed_through_op routes the mixers: a constant in the graph, like A.
PADDED_DT_WEIGHT_ATTR = "_mamba_export_dt_weight"
# The mixer attribute holding dt_proj's weight (D, R) in float32 while routed_through_op routes the
# mixers with fuse_delta_proj: the scan's delta_weight, a constant in the graph.
DT_WEIGHT_ATTR = "_mamba_export_delta_weight"
SILU = next(code for code, name in ACTIVATIONS.items() if name == "silu")


def padded_dt_weight(mixer, arch: Architecture) -> torch.Tensor:
    """dt_proj's weight (D, R) with 2N zero columns appended: (D, R + 2N). Applied to the whole
    x_proj output (dt, B, C) it gives dt_proj(dt) exactly, as B and C meet only zeros."""
    weight = get_path(mixer, arch.dt_proj).weight.detach()
    extra = get_path(mixer, arch.x_proj).out_features - weight.shape[1]
    return torch.nn.functional.pad(weight, (0, extra))


def _mask(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """hidden: (batch, sequence, channels); attention_mask: (batch, sequence), 1 keeps, 0 zeroes."""
    return (hidden * attention_mask[:, :, None]).to(hidden.dtype)


def _weightless_rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x)


def causal_conv(mixer, arch: Architecture, x: torch.Tensor, conv_state: torch.Tensor,
                attention_mask: torch.Tensor | None, x_offset: int = WHOLE):
    """Depthwise causal conv with SiLU continuing from ``conv_state``, as one CausalConv1d node.

    x: (batch, sequence, channels), or a wider tensor whose channels from ``x_offset`` on are
    the input; conv_state: (batch, channels, conv_kernel - 1), the last inputs seen;
    attention_mask: (batch, sequence) or None. Returns the activated output (batch, sequence,
    channels, zero where masked) in x's dtype and the new state.
    """
    conv = get_path(mixer, arch.conv1d)
    activation = get_path(mixer, arch.activation)
    if not isinstance(activation, torch.nn.SiLU) and type(activation).__name__ != "SiLUActivation":
        raise UnsupportedModelError(
            f"the mixer's activation is {type(activation).__name__}; the exporter supports SiLU only")
    bias = conv.bias.float() if conv.bias is not None else None
    return torch.ops.mamba_export.causal_conv1d(
        x, conv.weight[:, 0, :].float(), bias, conv_state.to(x.dtype), attention_mask, SILU, x_offset)


def mixer_forward(mixer, arch: Architecture, hidden: torch.Tensor, attention_mask: torch.Tensor,
                  conv_state: torch.Tensor, ssm_state: torch.Tensor, bcdt_eps: float = 0.0,
                  fuse_delta_proj: bool = False):
    """hidden: (batch, sequence, hidden_size) -> (out (batch, sequence, hidden_size), conv_state, ssm_state).

    ssm_state: (batch, intermediate_size, state_size) float32, as the op wants it.
    fuse_delta_proj: the scan projects the time step with dt_proj's weight itself (no dt_proj node).
    """
    dtype = hidden.dtype
    in_proj = get_path(mixer, arch.in_proj)
    inner = in_proj.out_features // 2
    # in_proj's output is [x, gate]: the conv reads x at offset 0, the scan the gate at offset D.
    if in_proj.bias is None:
        packed_xz = in_proj(hidden)
        x, new_conv_state = causal_conv(mixer, arch, packed_xz, conv_state, attention_mask, x_offset=0)
    else:
        packed_xz = in_proj(_mask(hidden, attention_mask))
        x, new_conv_state = causal_conv(mixer, arch, packed_xz, conv_state, None, x_offset=0)
        x = _mask(x, attention_mask)

    x_proj = get_path(mixer, arch.x_proj)
    state_size = get_path(mixer, arch.a_log).shape[1]
    rank = x_proj.out_features - 2 * state_size
    dt_proj = get_path(mixer, arch.dt_proj)
    projected = x_proj(x)  # (batch, sequence, rank + 2 * state): [dt, B, C]
    delta_weight, delta_offset = None, WHOLE
    if fuse_delta_proj:
        # dt_proj's weight as routed_through_op precomputed it (a constant in the graph), float32.
        delta_weight = mixer.__dict__.get(DT_WEIGHT_ATTR)
        delta_weight = dt_proj.weight.detach().float() if delta_weight is None else delta_weight
        delta_offset = 0
    if arch.normalized_bcdt:
        time_step, b, c = torch.split(projected, [rank, state_size, state_size], dim=-1)
        time_step, b, c = (_weightless_rms_norm(t, bcdt_eps) for t in (time_step, b, c))
        # (batch, sequence, intermediate), or x_dt itself (the scan projects it at offset 0).
        delta = time_step if fuse_delta_proj else torch.nn.functional.linear(time_step, dt_proj.weight)
        b_offset = c_offset = WHOLE
    elif fuse_delta_proj:
        delta = b = c = projected  # [dt, B, C]: x_dt at offset 0, B at R, C at R + N
        b_offset, c_offset = rank, rank + state_size
    else:
        # The padded weight as routed_through_op precomputed it (a constant in the graph).
        weight = mixer.__dict__.get(PADDED_DT_WEIGHT_ATTR)
        weight = padded_dt_weight(mixer, arch) if weight is None else weight
        delta = torch.nn.functional.linear(projected, weight.to(projected.dtype))
        b = c = projected
        b_offset, c_offset = rank, rank + state_size
    delta_bias = dt_proj.bias.float() if dt_proj.bias is not None else None

    # A as routed_through_op precomputed it (a constant in the graph), else from A_log.
    a = mixer.__dict__.get(STATE_MATRIX_ATTR)
    if a is None:
        a = -torch.exp(get_path(mixer, arch.a_log).float())
    y, new_ssm_state = torch.ops.mamba_export.selective_scan(
        x, delta, a, b, c, get_path(mixer, arch.d_skip).float(), packed_xz, delta_bias, ssm_state, True,
        LAYOUT_CHANNELS_LAST, b_offset, c_offset, inner, delta_weight, delta_offset)
    out = get_path(mixer, arch.out_proj)(y.to(dtype))
    return out, new_conv_state, new_ssm_state
