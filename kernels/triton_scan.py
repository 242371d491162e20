"""The selective scan (prefill) as a Triton kernel.

Same signature and semantics as :func:`mamba_export.ops.reference.selective_scan`
(the contract is :mod:`mamba_export.ops.selective_scan`); this is what the torch
op runs on CUDA. One program owns one batch row and a block of channels: it
keeps that block's state (BLOCK_D, N) in registers and walks the sequence one
step at a time, accumulating in float32 whatever the I/O dtype. Strides are
passed through, so no input is copied to make it contiguous.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mamba_export.kernels._common import check_devices, dtype_name, launch_config, silu, softplus
from mamba_export.ops.selective_scan import OP_TYPE, check_inputs


@triton.jit
def _projection_pointers(base, offs_d, offs_n, mask_d, mask_n, block_start, channels_per_group,
                         stride_g, stride_n, ONE_GROUP: tl.constexpr):
    """Pointers and mask of B or C at step 0, broadcastable to (BLOCK_D, BLOCK_N).

    When the whole channel block lies in one group a single (1, BLOCK_N) row is
    read per step; otherwise each channel reads the row of its own group.
    """
    if ONE_GROUP:
        group = block_start // channels_per_group
        ptrs = base + group * stride_g + offs_n[None, :] * stride_n
        mask = mask_n[None, :]
    else:
        group = offs_d // channels_per_group
        ptrs = base + group[:, None] * stride_g + offs_n[None, :] * stride_n
        mask = mask_d[:, None] & mask_n[None, :]
    return ptrs, mask


@triton.jit
def _load_step(t, length, u_ptrs, dt_ptrs, z_ptrs, b_ptrs, c_ptrs, su_l, sdt_l, sz_l, sb_l, sc_l,
               mask_d, b_mask, c_mask, HAS_Z: tl.constexpr):
    """Step t's u, delta, z, B and C in their I/O dtype (z zeros when absent).

    Past the end it reads the last step again, which is harmless and cheaper than
    one more mask.
    """
    t = tl.minimum(t, length - 1)
    u = tl.load(u_ptrs + t * su_l, mask=mask_d, other=0.0)
    dt = tl.load(dt_ptrs + t * sdt_l, mask=mask_d, other=0.0)
    if HAS_Z:
        z = tl.load(z_ptrs + t * sz_l, mask=mask_d, other=0.0)
    else:
        z = tl.zeros_like(u)
    b = tl.load(b_ptrs + t * sb_l, mask=b_mask, other=0.0)
    c = tl.load(c_ptrs + t * sc_l, mask=c_mask, other=0.0)
    return u, dt, z, b, c


@triton.jit
def _scan_kernel(
    u_ptr, delta_ptr, a_ptr, b_ptr, c_ptr, d_ptr, z_ptr, bias_ptr, h0_ptr, y_ptr, h_out_ptr,
    dim, length, state, b_channels_per_group, c_channels_per_group,
    su_b, su_d, su_l, sdt_b, sdt_d, sdt_l, sa_d, sa_n,
    sb_b, sb_g, sb_n, sb_l, sc_b, sc_g, sc_n, sc_l,
    sd_d, sz_b, sz_d, sz_l, sbias_d, sh0_b, sh0_d, sh0_n, sy_b, sy_d, sy_l, sho_b, sho_d, sho_n,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr,
    SOFTPLUS: tl.constexpr, B_ONE_GROUP: tl.constexpr, C_ONE_GROUP: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_b = tl.program_id(0).to(tl.int64)
    block_start = tl.program_id(1) * BLOCK_D
    offs_d = block_start + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < dim
    mask_n = offs_n < state
    mask_dn = mask_d[:, None] & mask_n[None, :]

    a = tl.load(a_ptr + offs_d[:, None] * sa_d + offs_n[None, :] * sa_n, mask=mask_dn, other=0.0)
    if HAS_H0:
        h0_ptrs = h0_ptr + pid_b * sh0_b + offs_d[:, None] * sh0_d + offs_n[None, :] * sh0_n
        h = tl.load(h0_ptrs, mask=mask_dn, other=0.0).to(tl.float32)
    else:
        h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    if HAS_D:
        skip = tl.load(d_ptr + offs_d * sd_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d * sbias_d, mask=mask_d, other=0.0).to(tl.float32)

    u_ptrs = u_ptr + pid_b * su_b + offs_d * su_d
    dt_ptrs = delta_ptr + pid_b * sdt_b + offs_d * sdt_d
    z_ptrs = z_ptr + pid_b * sz_b + offs_d * sz_d
    y_ptrs = y_ptr + pid_b * sy_b + offs_d * sy_d
    b_ptrs, b_mask = _projection_pointers(b_ptr + pid_b * sb_b, offs_d, offs_n, mask_d, mask_n,
                                          block_start, b_channels_per_group, sb_g, sb_n, B_ONE_GROUP)
    c_ptrs, c_mask = _projection_pointers(c_ptr + pid_b * sc_b, offs_d, offs_n, mask_d, mask_n,
                                          block_start, c_channels_per_group, sc_g, sc_n, C_ONE_GROUP)

    # Loads for step t + 1 are issued before step t is computed: the loop is bound by
    # memory latency, not arithmetic, and this hides part of it.
    args = (length, u_ptrs, dt_ptrs, z_ptrs, b_ptrs, c_ptrs, su_l, sdt_l, sz_l, sb_l, sc_l,
            mask_d, b_mask, c_mask, HAS_Z)
    ahead = _load_step(0, *args)
    for t in range(length):
        u_t, dt, z_t, b_t, c_t = ahead
        ahead = _load_step(t + 1, *args)
        u_t = u_t.to(tl.float32)
        dt = dt.to(tl.float32)
        if HAS_BIAS:
            dt = dt + bias
        if SOFTPLUS:
            dt = softplus(dt)
        h = tl.exp(dt[:, None] * a) * h + (dt * u_t)[:, None] * b_t.to(tl.float32)
        y_t = tl.sum(h * c_t.to(tl.float32), axis=1)
        if HAS_D:
            y_t = y_t + skip * u_t
        if HAS_Z:
            y_t = y_t * silu(z_t.to(tl.float32))
        tl.store(y_ptrs + t * sy_l, y_t.to(y_ptr.dtype.element_ty), mask=mask_d)

    h_out_ptrs = h_out_ptr + pid_b * sho_b + offs_d[:, None] * sho_d + offs_n[None, :] * sho_n
    tl.store(h_out_ptrs, h, mask=mask_dn)


def _as_groups(x: torch.Tensor) -> torch.Tensor:
    """View (B, N, L) as (B, 1, N, L) so that both ranks take the same path."""
    return x.unsqueeze(1) if x.dim() == 3 else x


def _one_group_per_block(x4: torch.Tensor, channels_per_group: int, block_d: int) -> bool:
    """True when every block of channels (aligned on block_d) reads a single group of x4."""
    return x4.shape[1] == 1 or channels_per_group % block_d == 0


def _strides(x: torch.Tensor | None, rank: int) -> tuple:
    return tuple(x.stride()) if x is not None else (0,) * rank


def _initial_or_zero_state(initial_state, batch, dim, state, device):
    if initial_state is not None:
        return initial_state.to(torch.float32, copy=True)
    return torch.zeros(batch, dim, state, dtype=torch.float32, device=device)


def _check_block_d(block_d: int) -> None:
    if block_d < 1 or block_d & (block_d - 1):
        raise ValueError(f"block_d must be a power of two, got {block_d}")


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None,
                   delta_softplus=False, *, block_d: int | None = None, num_warps: int | None = None):
    """Run the selective scan on the GPU (or in Triton's interpreter).

    u, delta, z: (B, D, L) in float32, float16 or bfloat16; A: (D, N) float32;
    B, C: (B, N, L) or (B, G, N, L) in u's dtype; D, delta_bias: (D,) float32;
    initial_state: (B, D, N) float32. Returns y: (B, D, L) in u's dtype and
    last_state: (B, D, N) float32. ``block_d`` (channels per program, a power of
    two) and ``num_warps`` override the tuned launch; the result does not depend
    on them.
    """
    named = dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias,
                 initial_state=initial_state)
    present = {k: v for k, v in named.items() if v is not None}
    dims = check_inputs({k: tuple(v.shape) for k, v in present.items()},
                        {k: dtype_name(v) for k, v in present.items()})
    device = check_devices(OP_TYPE, _scan_kernel, named)
    batch, dim, length, state = dims.batch, dims.dim, dims.length, dims.state
    y = torch.empty(batch, dim, length, dtype=u.dtype, device=device)
    if length == 0 or batch == 0 or dim == 0:
        return y, _initial_or_zero_state(initial_state, batch, dim, state, device)
    last_state = torch.empty(batch, dim, state, dtype=torch.float32, device=device)
    block_n = triton.next_power_of_2(max(state, 1))
    tuned_block_d, tuned_warps = launch_config(batch, dim, block_n, device)
    if block_d is not None:
        _check_block_d(block_d)
    block_d = block_d or tuned_block_d
    b4, c4 = _as_groups(B), _as_groups(C)
    b_per_group, c_per_group = dim // b4.shape[1], dim // c4.shape[1]
    _scan_kernel[(batch, triton.cdiv(dim, block_d))](
        u, delta, A, b4, c4,
        D if D is not None else A, z if z is not None else u,
        delta_bias if delta_bias is not None else A,
        initial_state if initial_state is not None else last_state, y, last_state,
        dim, length, state, b_per_group, c_per_group,
        *u.stride(), *delta.stride(), *A.stride(), *b4.stride(), *c4.stride(),
        *_strides(D, 1), *_strides(z, 3), *_strides(delta_bias, 1), *_strides(initial_state, 3),
        *y.stride(), *last_state.stride(),
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        HAS_H0=initial_state is not None, SOFTPLUS=bool(delta_softplus),
        B_ONE_GROUP=_one_group_per_block(b4, b_per_group, block_d),
        C_ONE_GROUP=_one_group_per_block(c4, c_per_group, block_d),
        BLOCK_D=block_d, BLOCK_N=block_n, num_warps=num_warps or tuned_warps,
    )
    return y, last_state
