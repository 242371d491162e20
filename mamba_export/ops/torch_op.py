"""Our ops as PyTorch operators, so the exporter can trace each as one node.

``torch.ops.mamba_export.selective_scan`` and ``torch.ops.mamba_export.causal_conv1d``
are opaque to ``torch.export``: the graph keeps each as a single call (shapes come
from the fake implementations below), and ``mamba_export.ops.onnx_translation``
turns that call into one ONNX node of the contract's domain. Run eagerly, the scan
runs on CPU with the sequential reference, on CUDA with the Triton kernel (imported
only when first needed, so a CPU-only machine never loads triton); the convolution
runs the reference on either device, in float32 arithmetic for every I/O dtype, and so
does ``torch.ops.mamba_export.residual_rms_norm`` (:mod:`mamba_export.ops.residual_norm`).
"""

from __future__ import annotations

import torch

from mamba_export.ops import causal_conv, reference, residual_norm
from mamba_export.ops.selective_scan import (
    LAYOUT_CHANNELS_LAST,
    TO_CHANNELS_FIRST,
    TO_CHANNELS_LAST,
    WHOLE,
    check_inputs,
    check_layout,
    project_delta,
    take_windows,
)

OP_QUALNAME = "mamba_export::selective_scan"
CONV_QUALNAME = "mamba_export::causal_conv1d"
NORM_QUALNAME = "mamba_export::residual_rms_norm"


def _state_dtype(io_dtype: torch.dtype) -> torch.dtype:
    # The state is float32 whatever the I/O dtype; a float64 run stays float64 (oracle).
    return torch.float64 if io_dtype == torch.float64 else torch.float32


@torch.library.custom_op(OP_QUALNAME, mutates_args=())
def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    initial_state: torch.Tensor | None,
    delta_softplus: bool,
    layout: int = 0,
    b_offset: int = WHOLE,
    c_offset: int = WHOLE,
    z_offset: int = WHOLE,
    delta_weight: torch.Tensor | None = None,
    delta_offset: int = WHOLE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The contract's scan. Layout 0: u, delta, z: (B, D, L); B, C: (B, N, L) or (B, G, N, L).
    Layout 1: u, delta, z: (B, L, D); B, C: (B, L, N) or (B, L, G, N), or with an offset >= 0 a
    (B, L, W) tensor read at channels [offset, offset + N) (z: + D). A: (D, N); D, delta_bias:
    (D,); initial_state: (B, D, N). With delta_weight (D, R) (layout 1), delta is a (B, L, W)
    tensor whose channels from delta_offset on are x_dt, and the scan's delta is
    x_dt @ delta_weight.T in float32. Returns y in u's layout and dtype and last_state:
    (B, D, N) in float32."""
    offsets = dict(b_offset=b_offset, c_offset=c_offset, z_offset=z_offset, delta_offset=delta_offset)
    if delta_weight is not None or any(offset != WHOLE for offset in offsets.values()):
        named = dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias,
                     initial_state=initial_state, delta_weight=delta_weight)
        dims = check_inputs({k: (None if v is None else tuple(v.shape)) for k, v in named.items()},
                            layout=layout, offsets=offsets)
        B, C, z = (take_windows(named, offsets, dims)[k] for k in ("B", "C", "z"))
        if delta_weight is not None:
            # float32 (float64 for the oracle): the Triton kernel and the reference both read it.
            delta = project_delta(named, offsets, dims)
    args = (u, delta, A, B, C, D, z, delta_bias, initial_state)
    # The Triton kernel takes delta in u's dtype: a projected delta (float32, never rounded to a
    # half-precision u) runs the reference instead, on the same device.
    if u.device.type == "cuda" and delta.dtype == u.dtype:
        y, last_state = _triton_scan(args, delta_softplus, check_layout(layout))
    else:
        y, last_state = reference.selective_scan(*args, delta_softplus=delta_softplus, layout=layout)
    # A custom op may not return its inputs (or views of them): copy if the scan did.
    if initial_state is not None and last_state.data_ptr() == initial_state.data_ptr():
        last_state = last_state.clone()
    return y.contiguous(), last_state.to(_state_dtype(u.dtype)).contiguous()


def _triton_scan(args, delta_softplus, layout):
    """The Triton kernel reads strides, so channels-last inputs go in as permuted views."""
    from mamba_export.kernels.triton_scan import selective_scan as scan

    if layout != LAYOUT_CHANNELS_LAST:
        return scan(*args, delta_softplus=delta_softplus)
    names = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state")
    named = dict(zip(names, args, strict=True))
    check_inputs({k: (None if v is None else tuple(v.shape)) for k, v in named.items()}, layout=layout)
    first = [v.permute(TO_CHANNELS_FIRST[v.dim()]) if v is not None and k in ("u", "delta", "z", "B", "C")
             else v for k, v in named.items()]
    y, last_state = scan(*first, delta_softplus=delta_softplus)
    return y.permute(TO_CHANNELS_LAST[3]), last_state


@selective_scan.register_fake
def _selective_scan_fake(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus, layout=0,
                         b_offset=WHOLE, c_offset=WHOLE, z_offset=WHOLE, delta_weight=None, delta_offset=WHOLE):
    # Shape checks with concrete sizes only: under export L is symbolic.
    layout = check_layout(layout)
    if all(isinstance(s, int) for s in u.shape):
        named = dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias,
                     initial_state=initial_state, delta_weight=delta_weight)
        check_inputs({k: (None if v is None else tuple(v.shape)) for k, v in named.items()}, layout=layout,
                     offsets=dict(b_offset=b_offset, c_offset=c_offset, z_offset=z_offset,
                                  delta_offset=delta_offset))
    batch, dim = u.shape[0], u.shape[2] if layout == LAYOUT_CHANNELS_LAST else u.shape[1]
    y = u.new_empty(u.shape)
    last_state = u.new_empty((batch, dim, A.shape[1]), dtype=_state_dtype(u.dtype))
    return y, last_state


@torch.library.custom_op(CONV_QUALNAME, mutates_args=())
def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    conv_state: torch.Tensor | None,
    mask: torch.Tensor | None,
    activation: int,
    x_offset: int = causal_conv.WHOLE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The contract's convolution. x: (B, L, C), or with x_offset >= 0 a (B, L, W) tensor read at
    channels [x_offset, x_offset + C); weight: (C, K) float32; bias: (C,) float32; conv_state:
    (B, C, K-1) in x's dtype; mask: (B, L) int64. Returns y: (B, L, C) and new_conv_state:
    (B, C, K-1), both in x's dtype."""
    y, new_state = reference.causal_conv1d(x, weight, bias, conv_state, mask, activation, x_offset)
    # A custom op may not return its inputs (or views of them): L = 0 hands the state back.
    if conv_state is not None and new_state.data_ptr() == conv_state.data_ptr() and new_state.numel():
        new_state = new_state.clone()
    return y, new_state


@causal_conv1d.register_fake
def _causal_conv1d_fake(x, weight, bias, conv_state, mask, activation, x_offset=causal_conv.WHOLE):
    causal_conv.check_activation(activation)
    causal_conv.check_x_offset(x_offset)
    # Shape checks with concrete sizes only: under export B and L are symbolic.
    if all(isinstance(s, int) for s in x.shape):
        named = dict(x=x, weight=weight, bias=bias, conv_state=conv_state, mask=mask)
        causal_conv.check_inputs({k: (None if v is None else tuple(v.shape)) for k, v in named.items()},
                                 x_offset=x_offset)
    batch, length = x.shape[0], x.shape[1]
    channels = weight.shape[0]
    return x.new_empty((batch, length, channels)), x.new_empty((batch, channels, weight.shape[1] - 1))


@torch.library.custom_op(NORM_QUALNAME, mutates_args=())
def residual_rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    residual: torch.Tensor | None,
    epsilon: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The contract's residual norm. x: (..., H); weight: (H,) in x's dtype; residual: (..., H)
    float32. Returns y in x's dtype and residual_out: (..., H) float32 (x + residual)."""
    y, total = reference.residual_rms_norm(x, weight, residual, epsilon)
    # A custom op may not return its inputs (or views of them): a float32 x without a residual is s.
    if total.data_ptr() == x.data_ptr() and total.numel():
        total = total.clone()
    return y, total


@residual_rms_norm.register_fake
def _residual_rms_norm_fake(x, weight, residual, epsilon):
    residual_norm.check_epsilon(epsilon)
    return x.new_empty(x.shape), x.new_empty(x.shape, dtype=_state_dtype(x.dtype))
