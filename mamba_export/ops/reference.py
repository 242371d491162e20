"""The plain ops in PyTorch, written for trust rather than speed: the parity oracles.

``selective_scan`` has the signature of ``mamba_export.kernels.triton_scan.selective_scan``
and ``causal_conv1d`` that of ``torch.ops.mamba_export.causal_conv1d``. Each follows
its contract (:mod:`mamba_export.ops.selective_scan`, :mod:`mamba_export.ops.causal_conv`)
step by step, with no tricks, so it can be trusted; run it on float64 inputs to get the reference every
other implementation is compared with. Half-precision inputs are computed in
float32, as the contract requires.
"""

from __future__ import annotations

import numpy as np
import torch

from mamba_export.ops import causal_conv as conv_contract
from mamba_export.ops import last_argmax as argmax_contract
from mamba_export.ops import linear as linear_contract
from mamba_export.ops import residual_norm as norm_contract
from mamba_export.ops.selective_scan import (
    LAYOUT_CHANNELS_LAST,
    SOFTPLUS_THRESHOLD,
    TO_CHANNELS_FIRST,
    TO_CHANNELS_LAST,
    WHOLE,
    check_inputs,
    project_delta,
    take_windows,
)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _expand_groups(x: torch.Tensor, dim: int) -> torch.Tensor:
    """(B, N, L) -> (B, 1, N, L); (B, G, N, L) -> (B, D, N, L) with channel d in group d // (D/G)."""
    if x.dim() == 3:
        return x.unsqueeze(1)
    return x.repeat_interleave(dim // x.shape[1], dim=1)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """torch's softplus with beta 1 and threshold 20, written out."""
    return torch.where(x > SOFTPLUS_THRESHOLD, x, torch.log1p(torch.exp(x)))


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None,
                   delta_softplus=False, layout=0, b_offset=WHOLE, c_offset=WHOLE, z_offset=WHOLE,
                   delta_weight=None, delta_offset=WHOLE):
    """Run the scan one step at a time.

    Layout 0: u, delta, z: (B, D, L); B, C: (B, N, L) or (B, G, N, L). Layout 1: u, delta,
    z: (B, L, D); B, C: (B, L, N) or (B, L, G, N), or with an offset >= 0 a (B, L, W) tensor
    read at channels [offset, offset + N) (z: + D). A: (D, N); D, delta_bias: (D,);
    initial_state: (B, D, N). With delta_weight (D, R) (layout 1), delta is a (B, L, W) tensor
    whose channels from delta_offset on are x_dt, and the scan's delta is x_dt @ delta_weight.T.
    Returns y in u's layout and dtype and last_state: (B, D, N) in float32 (float64 for float64
    inputs).
    """
    named = dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias,
                 initial_state=initial_state, delta_weight=delta_weight)
    offsets = dict(b_offset=b_offset, c_offset=c_offset, z_offset=z_offset, delta_offset=delta_offset)
    dims = check_inputs({k: (None if v is None else tuple(v.shape)) for k, v in named.items()}, layout=layout,
                        offsets=offsets)
    if delta_weight is not None:
        # The plain contract, with delta already projected (in the compute dtype, not rounded to u's).
        named["delta"] = project_delta(named, offsets, dims)
    named.pop("delta_weight")
    offsets.pop("delta_offset")
    if any(offset != WHOLE for offset in offsets.values()):
        return selective_scan(**take_windows(named, offsets, dims), delta_softplus=delta_softplus, layout=layout)
    if layout == LAYOUT_CHANNELS_LAST:
        # The same scan on the channels-first view of the same values.
        first = {k: (v if v is None or k not in ("u", "delta", "z", "B", "C")
                     else v.permute(TO_CHANNELS_FIRST[v.dim()])) for k, v in named.items()}
        y, h = selective_scan(**first, delta_softplus=delta_softplus)
        return y.permute(TO_CHANNELS_LAST[3]).contiguous(), h
    cdt = _compute_dtype(u.dtype)
    u_, dt = u.to(cdt), delta.to(cdt)
    if delta_bias is not None:
        dt = dt + delta_bias.to(cdt)[None, :, None]
    if delta_softplus:
        dt = softplus(dt)
    a = A.to(cdt)
    b_all = _expand_groups(B.to(cdt), dims.dim)
    c_all = _expand_groups(C.to(cdt), dims.dim)
    if initial_state is None:
        h = torch.zeros(dims.batch, dims.dim, dims.state, dtype=cdt, device=u.device)
    else:
        h = initial_state.to(cdt).clone()
    ys = []
    for t in range(dims.length):
        dt_t = dt[:, :, t, None]  # (B, D, 1)
        h = torch.exp(dt_t * a) * h + dt_t * b_all[..., t] * u_[:, :, t, None]
        ys.append((h * c_all[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else u_.new_zeros(dims.batch, dims.dim, 0)
    if D is not None:
        y = y + D.to(cdt)[None, :, None] * u_
    if z is not None:
        y = y * torch.nn.functional.silu(z.to(cdt))
    return y.to(u.dtype), h


def causal_conv1d(x, weight, bias=None, conv_state=None, mask=None, activation=0, x_offset=conv_contract.WHOLE):
    """The causal depthwise convolution of :mod:`mamba_export.ops.causal_conv`, tap by tap.

    x: (B, L, C), or with x_offset >= 0 a (B, L, W) tensor read at channels [x_offset,
    x_offset + C); weight: (C, K) float32; bias: (C,) float32; conv_state: (B, C, K-1);
    mask: (B, L) int64. Returns y: (B, L, C) and new_conv_state: (B, C, K-1), both in x's
    dtype (computed in float64 for float64 inputs, else in float32).
    """
    named = dict(x=x, weight=weight, bias=bias, conv_state=conv_state, mask=mask)
    dims = conv_contract.check_inputs({k: (None if v is None else tuple(v.shape)) for k, v in named.items()},
                                      x_offset=x_offset)
    conv_contract.check_activation(activation)
    x = conv_contract.take_window(x, x_offset, dims.channels)
    cdt = _compute_dtype(x.dtype)
    xs = x.to(cdt).transpose(1, 2)  # (B, C, L)
    if mask is not None:
        # A select, not a product: whatever sits under the mask (inf, NaN) never reaches the sum.
        xs = torch.where((mask != 0)[:, None, :], xs, torch.zeros((), dtype=cdt, device=x.device))
    if conv_state is None:
        state = torch.zeros(dims.batch, dims.channels, dims.width - 1, dtype=cdt, device=x.device)
    else:
        state = conv_state.to(cdt)
    window = torch.cat([state, xs], dim=2)  # (B, C, K-1+L), oldest first
    taps = weight.to(cdt)
    v = torch.zeros(dims.batch, dims.channels, dims.length, dtype=cdt, device=x.device)
    for k in range(dims.width):
        v = v + taps[None, :, k, None] * window[:, :, k:k + dims.length]
    if bias is not None:
        v = v + bias.to(cdt)[None, :, None]
    if activation == 1:
        v = torch.nn.functional.silu(v)
    y = v.transpose(1, 2)
    if mask is not None:
        y = torch.where((mask != 0)[:, :, None], y, torch.zeros((), dtype=cdt, device=x.device))
    new_state = window[:, :, dims.length:]
    return y.to(x.dtype).contiguous(), new_state.to(x.dtype).contiguous()


def residual_rms_norm(x, weight, residual, epsilon):
    """The residual sum and RMS norm of :mod:`mamba_export.ops.residual_norm`, as written there.

    x: (..., H); weight: (H,); residual: (..., H) float32 or None. Returns y in x's dtype and
    residual_out in float32 (both computed in float64 for float64 inputs, else in float32).
    """
    norm_contract.check_inputs({"x": tuple(x.shape), "weight": tuple(weight.shape),
                                "residual": None if residual is None else tuple(residual.shape)})
    epsilon = norm_contract.check_epsilon(epsilon)
    cdt = _compute_dtype(x.dtype)
    s = x.to(cdt) if residual is None else x.to(cdt) + residual.to(cdt)
    inv = torch.rsqrt(s.square().mean(-1, keepdim=True) + epsilon) if s.shape[-1] else s
    y = weight.to(cdt) * (s * inv)
    return y.to(x.dtype).contiguous(), s.contiguous()


def linear(x, weight):
    """The product of :mod:`mamba_export.ops.linear`: x (..., K) times weight (N, K) transposed.

    Returns y (..., N) in x's dtype, computed in float64 for float64 inputs, else in float32
    and rounded once.
    """
    linear_contract.check_inputs({"x": tuple(x.shape), "weight": tuple(weight.shape)})
    cdt = _compute_dtype(x.dtype)
    y = torch.matmul(x.to(cdt), weight.to(cdt).transpose(0, 1))
    return y.to(x.dtype).contiguous()


def last_argmax(logits):
    """The greedy choice of :mod:`mamba_export.ops.last_argmax`: the argmax of the last position.

    logits: (B, L, V), a torch tensor or a numpy array (ml_dtypes' bfloat16 too). Returns tokens
    (B, 1) int64 of the same kind. The values are compared in float64 (every float32, float16 and
    bfloat16 value is exact there, so the order is that of float32), with NumPy's rules: the first
    index among equal maxima, the index of the first NaN in a row that holds one.
    """
    argmax_contract.check_inputs({"logits": tuple(logits.shape)})
    is_torch = isinstance(logits, torch.Tensor)
    values = logits.detach().to("cpu", torch.float64).numpy() if is_torch else np.asarray(logits, np.float64)
    tokens = np.argmax(values[:, -1, :], axis=-1).astype(np.int64)[:, None]
    return torch.from_numpy(tokens) if is_torch else tokens
