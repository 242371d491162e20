"""One decode step of the selective scan as a Triton kernel.

Generation feeds one token at a time; rerunning the scan over the whole prefix
for each token would be quadratic, so this kernel advances the float32 state by
one step in place and returns that step's output. Its math is the scan's
(shared helpers in :mod:`mamba_export.kernels._common`), so prefill followed by
steps equals one long scan.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mamba_export.errors import InputShapeError
from mamba_export.kernels._common import check_devices, dtype_name, launch_config, silu, softplus
from mamba_export.ops.selective_scan import IO_DTYPES

_OP = "selective_state_update"


@triton.jit
def _state_update_kernel(
    state_ptr, x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, z_ptr, bias_ptr, y_ptr,
    dim, n_state, b_channels_per_group, c_channels_per_group,
    ss_b, ss_d, ss_n, sx_b, sx_d, sdt_b, sdt_d, sa_d, sa_n, sb_b, sb_g, sb_n, sc_b, sc_g, sc_n,
    sd_d, sz_b, sz_d, sbias_d, sy_b, sy_d,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):
    pid_b = tl.program_id(0).to(tl.int64)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < dim
    mask_dn = mask_d[:, None] & (offs_n < n_state)[None, :]

    state_ptrs = state_ptr + pid_b * ss_b + offs_d[:, None] * ss_d + offs_n[None, :] * ss_n
    h = tl.load(state_ptrs, mask=mask_dn, other=0.0)
    a = tl.load(a_ptr + offs_d[:, None] * sa_d + offs_n[None, :] * sa_n, mask=mask_dn, other=0.0)
    x = tl.load(x_ptr + pid_b * sx_b + offs_d * sx_d, mask=mask_d, other=0.0).to(tl.float32)
    dt = tl.load(dt_ptr + pid_b * sdt_b + offs_d * sdt_d, mask=mask_d, other=0.0).to(tl.float32)
    b_group = (offs_d // b_channels_per_group)[:, None]
    b = tl.load(b_ptr + pid_b * sb_b + b_group * sb_g + offs_n[None, :] * sb_n, mask=mask_dn, other=0.0)
    c_group = (offs_d // c_channels_per_group)[:, None]
    c = tl.load(c_ptr + pid_b * sc_b + c_group * sc_g + offs_n[None, :] * sc_n, mask=mask_dn, other=0.0)
    if HAS_BIAS:
        dt = dt + tl.load(bias_ptr + offs_d * sbias_d, mask=mask_d, other=0.0).to(tl.float32)
    if SOFTPLUS:
        dt = softplus(dt)

    h = tl.exp(dt[:, None] * a) * h + (dt * x)[:, None] * b.to(tl.float32)
    tl.store(state_ptrs, h, mask=mask_dn)
    y = tl.sum(h * c.to(tl.float32), axis=1)
    if HAS_D:
        y = y + tl.load(d_ptr + offs_d * sd_d, mask=mask_d, other=0.0).to(tl.float32) * x
    if HAS_Z:
        y = y * silu(tl.load(z_ptr + pid_b * sz_b + offs_d * sz_d, mask=mask_d, other=0.0).to(tl.float32))
    tl.store(y_ptr + pid_b * sy_b + offs_d * sy_d, y.to(y_ptr.dtype.element_ty), mask=mask_d)


def _fmt(shape) -> str:
    dims = tuple(int(s) for s in shape)
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


def _expect(name: str, tensor: torch.Tensor, expected: tuple, words: str) -> None:
    if tuple(tensor.shape) != tuple(expected):
        raise InputShapeError(
            f"{_OP}: {name} is {_fmt(tensor.shape)}, expected {words} = {_fmt(expected)}"
        )


def _check_projection(name: str, tensor: torch.Tensor, batch: int, dim: int, n_state: int) -> int:
    """Check B or C, (B, N) or (B, G, N); return G (1 for the rank-2 form)."""
    if tensor.dim() == 2:
        _expect(name, tensor, (batch, n_state), "(B, N)")
        return 1
    if tensor.dim() == 3:
        groups = int(tensor.shape[1])
        if groups < 1 or dim % groups != 0:
            raise InputShapeError(f"{_OP}: {name} has {groups} groups, which does not divide D = {dim}")
        _expect(name, tensor, (batch, groups, n_state), "(B, G, N)")
        return groups
    raise InputShapeError(
        f"{_OP}: {name} has rank {tensor.dim()} {_fmt(tensor.shape)}, expected (B, N) or (B, G, N)"
    )


def _check_dtypes(named: dict) -> None:
    io_dtype = dtype_name(named["x"])
    if io_dtype not in IO_DTYPES:
        raise InputShapeError(f"{_OP}: x is {io_dtype}, expected one of {', '.join(IO_DTYPES)}")
    for name, tensor in named.items():
        if tensor is None:
            continue
        always_float32 = name in ("state", "A", "D", "dt_bias")
        expected = "float32" if always_float32 else io_dtype
        if dtype_name(tensor) != expected:
            why = "(parameters and state are always float32)" if always_float32 else "to match x"
            raise InputShapeError(f"{_OP}: {name} is {dtype_name(tensor)}, expected {expected} {why}")


def check_step_inputs(state, x, dt, A, B, C, D=None, z=None, dt_bias=None) -> tuple[int, int]:
    """Check one decode step's inputs; return the groups of B and of C."""
    if state.dim() != 3:
        raise InputShapeError(f"{_OP}: state has rank {state.dim()} {_fmt(state.shape)}, expected (B, D, N)")
    batch, dim, n_state = (int(s) for s in state.shape)
    _expect("x", x, (batch, dim), "(B, D) like state")
    _expect("dt", dt, (batch, dim), "(B, D) like state")
    _expect("A", A, (dim, n_state), "(D, N) like state")
    groups_b = _check_projection("B", B, batch, dim, n_state)
    groups_c = _check_projection("C", C, batch, dim, n_state)
    for name, tensor, expected, words in (("D", D, (dim,), "(D,)"), ("z", z, (batch, dim), "(B, D)"),
                                          ("dt_bias", dt_bias, (dim,), "(D,)")):
        if tensor is not None:
            _expect(name, tensor, expected, words + " like state")
    _check_dtypes(dict(state=state, x=x, dt=dt, A=A, B=B, C=C, D=D, z=z, dt_bias=dt_bias))
    return groups_b, groups_c


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """Advance ``state`` by one step in place and return that step's output.

    state: (B, D, N) float32, updated in place; x, dt, z: (B, D) in float32,
    float16 or bfloat16; A: (D, N) float32; B, C: (B, N) or (B, G, N) in x's
    dtype; D, dt_bias: (D,) float32. Returns y: (B, D) in x's dtype.
    """
    groups_b, groups_c = check_step_inputs(state, x, dt, A, B, C, D, z, dt_bias)
    device = check_devices(_OP, _state_update_kernel,
                           dict(state=state, x=x, dt=dt, A=A, B=B, C=C, D=D, z=z, dt_bias=dt_bias))
    batch, dim, n_state = state.shape
    y = torch.empty(batch, dim, dtype=x.dtype, device=device)
    if batch == 0 or dim == 0:
        return y
    b3 = B.unsqueeze(1) if B.dim() == 2 else B
    c3 = C.unsqueeze(1) if C.dim() == 2 else C
    block_n = triton.next_power_of_2(max(n_state, 1))
    block_d, num_warps = launch_config(batch, dim, block_n, device)
    grid = (batch, triton.cdiv(dim, block_d))
    _state_update_kernel[grid](
        state, x, dt, A, b3, c3, D if D is not None else A, z if z is not None else x,
        dt_bias if dt_bias is not None else A, y,
        dim, n_state, dim // groups_b, dim // groups_c,
        *state.stride(), *x.stride(), *dt.stride(), *A.stride(), *b3.stride(), *c3.stride(),
        D.stride(0) if D is not None else 0, *(z.stride() if z is not None else (0, 0)),
        dt_bias.stride(0) if dt_bias is not None else 0, *y.stride(),
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=dt_bias is not None,
        SOFTPLUS=bool(dt_softplus), BLOCK_D=block_d, BLOCK_N=block_n, num_warps=num_warps,
    )
    return y
