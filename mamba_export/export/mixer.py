"""One Mamba mixer with explicit states, computed through the SelectiveScan torch op.

This mirrors transformers' ``MambaMixer.forward`` (eval path) step by step with the
mixer's own weights, but takes the conv and SSM states as tensors and returns the
new ones, instead of reading and writing a cache object, so a single traced graph
serves prefill, chunked prefill and decode. The attention mask is applied where
transformers applies it (to the mixer input and to the conv output), so a
left-padded row gives the same result as the row alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import mamba_export.ops.torch_op  # noqa: F401  (registers torch.ops.mamba_export.selective_scan)
from mamba_export.export.architectures import Architecture, get_path


def _mask(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """hidden: (batch, sequence, channels); attention_mask: (batch, sequence), 1 keeps, 0 zeroes."""
    return (hidden * attention_mask[:, :, None]).to(hidden.dtype)


def _weightless_rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x)


def causal_conv(mixer, arch: Architecture, x: torch.Tensor, conv_state: torch.Tensor):
    """Depthwise causal conv continuing from ``conv_state``.

    x: (batch, channels, sequence); conv_state: (batch, channels, conv_kernel - 1), the last
    inputs seen. Returns the activated output (batch, channels, sequence) in x's dtype and
    the new state: the last conv_kernel - 1 columns of state and input together.
    """
    conv = get_path(mixer, arch.conv1d)
    kept = conv.kernel_size[0] - 1
    window = torch.cat([conv_state.to(x.dtype), x], dim=-1)
    new_state = window[:, :, window.shape[-1] - kept:]
    # ONNX Runtime has no bfloat16 Conv kernel: a bfloat16 model convolves in float32
    # (PyTorch accumulates its bfloat16 conv in float32 too, so only the rounding order differs).
    dtype = torch.float32 if conv.weight.dtype == torch.bfloat16 else conv.weight.dtype
    bias = conv.bias.to(dtype) if conv.bias is not None else None
    # The same conv written over an image one row high: ONNX Runtime's CPU provider runs a
    # 2-D depthwise Conv with its blocked-channel kernels, but a 1-D grouped Conv as one
    # small matrix product per channel. Measured on mamba-130m: a decode step 22.0 -> 19.4
    # ms; a 2048-token prompt 3 % slower (the layout reorders around the blocked conv).
    out = F.conv2d(window.to(dtype).unsqueeze(2), conv.weight.to(dtype).unsqueeze(2), bias,
                   groups=conv.weight.shape[0]).squeeze(2)
    out = get_path(mixer, arch.activation)(out)
    return out.to(x.dtype), new_state


def mixer_forward(mixer, arch: Architecture, hidden: torch.Tensor, attention_mask: torch.Tensor,
                  conv_state: torch.Tensor, ssm_state: torch.Tensor, bcdt_eps: float = 0.0):
    """hidden: (batch, sequence, hidden_size) -> (out (batch, sequence, hidden_size), conv_state, ssm_state).

    ssm_state: (batch, intermediate_size, state_size) float32, as the op wants it.
    """
    dtype = hidden.dtype
    projected = get_path(mixer, arch.in_proj)(_mask(hidden, attention_mask)).transpose(1, 2)
    x, gate = projected.chunk(2, dim=1)
    x, new_conv_state = causal_conv(mixer, arch, x, conv_state)
    x = _mask(x.transpose(1, 2), attention_mask)  # (batch, sequence, intermediate)

    x_proj = get_path(mixer, arch.x_proj)
    state_size = get_path(mixer, arch.a_log).shape[1]
    rank = x_proj.out_features - 2 * state_size
    time_step, b, c = torch.split(x_proj(x), [rank, state_size, state_size], dim=-1)
    if arch.normalized_bcdt:
        time_step, b, c = (_weightless_rms_norm(t, bcdt_eps) for t in (time_step, b, c))
    dt_proj = get_path(mixer, arch.dt_proj)
    delta = dt_proj.weight @ time_step.transpose(1, 2)  # (batch, intermediate, sequence)
    delta_bias = dt_proj.bias.float() if dt_proj.bias is not None else None

    a = -torch.exp(get_path(mixer, arch.a_log).float())
    y, new_ssm_state = torch.ops.mamba_export.selective_scan(
        x.transpose(1, 2), delta, a, b.transpose(1, 2), c.transpose(1, 2),
        get_path(mixer, arch.d_skip).float(), gate, delta_bias, ssm_state, True)
    out = get_path(mixer, arch.out_proj)(y.transpose(1, 2).to(dtype))
    return out, new_conv_state, new_ssm_state
