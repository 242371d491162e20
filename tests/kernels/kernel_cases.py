"""Random scan inputs, the float64 oracle and the tolerances shared by the kernel tests.

Tolerances are relative errors max|out - ref| / max|ref| against the float64
reference run on the very same (already rounded) inputs, so they only measure
the kernel's own arithmetic plus the final rounding of y:
    float32   1e-5   float32 accumulation over at most a few thousand steps
    float16   5e-3   one rounding of y to float16 is at most 2**-11 = 4.9e-4
    bfloat16  1e-2   one rounding of y to bfloat16 is at most 2**-8 = 3.9e-3 on a
                     GPU; Triton's interpreter truncates instead (up to 2**-7 =
                     7.8e-3), so on CPU the bound is one truncation plus margin.
The state is float32 in every case, hence held to the float32 bound.
"""

from __future__ import annotations

import pytest
import torch

from mamba_export.ops.reference import selective_scan as reference_scan

TOLERANCE = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 1e-2}
GPU_TOLERANCE = {**TOLERANCE, torch.bfloat16: 5e-3}
STATE_TOLERANCE = 1e-5

# Without a GPU the kernels run in Triton's interpreter on CPU tensors; with one, every
# test runs compiled on it.
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

OPTIONAL_INPUTS = ("D", "z", "delta_bias", "initial_state")


def make_scan_inputs(batch, dim, length, n_state, groups_b=None, groups_c=None, dtype=torch.float32,
                     softplus=True, absent=(), seed=0, device=DEVICE) -> dict:
    """Inputs in the ranges a trained Mamba layer sees; ``absent`` names optional inputs to leave out.

    groups_b/groups_c None gives the rank-3 (B, N, L) form, an int G the (B, G, N, L) form.
    Without softplus, delta is already a (positive) time step.
    """
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    def projection(groups):
        shape = (batch, n_state, length) if groups is None else (batch, groups, n_state, length)
        return randn(*shape).to(dtype)

    if softplus:
        delta = randn(batch, dim, length) - 1.0
    else:
        delta = torch.rand(batch, dim, length, generator=gen) * 0.3 + 0.01
    inputs = dict(
        u=randn(batch, dim, length).to(dtype),
        delta=delta.to(dtype),
        A=-(torch.rand(dim, n_state, generator=gen) * 2.0 + 0.1),
        B=projection(groups_b),
        C=projection(groups_c),
        D=randn(dim),
        z=randn(batch, dim, length).to(dtype),
        delta_bias=randn(dim) * 0.1,
        initial_state=randn(batch, dim, n_state),
    )
    for name in absent:
        inputs[name] = None
    return {k: (v.to(device) if v is not None else None) for k, v in inputs.items()}


def tolerance(dtype: torch.dtype, device: torch.device) -> float:
    return (GPU_TOLERANCE if device.type == "cuda" else TOLERANCE)[dtype]


def reference64(inputs: dict, softplus: bool):
    """The float64 reference on the same inputs: (y, last_state) in float64."""
    as64 = {k: (v.to(torch.float64) if v is not None else None) for k, v in inputs.items()}
    return reference_scan(**as64, delta_softplus=softplus)


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """max|out - ref| / max|ref| in float64 (0 for empty tensors)."""
    if ref.numel() == 0:
        return 0.0
    diff = (out.to(torch.float64) - ref.to(torch.float64)).abs().max()
    scale = ref.to(torch.float64).abs().max()
    return float(diff / scale) if scale > 0 else float(diff)
