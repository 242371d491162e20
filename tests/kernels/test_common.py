"""The elementwise helpers and the device checks shared by both kernels."""

import pytest
import torch
import triton
import triton.language as tl

from mamba_export.errors import BackendUnavailableError, InputShapeError
from mamba_export.kernels import _common
from mamba_export.kernels._common import check_devices


@triton.jit
def _apply_kernel(x_ptr, softplus_ptr, silu_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n, other=0.0)
    tl.store(softplus_ptr + offs, _common.softplus(x), mask=offs < n)
    tl.store(silu_ptr + offs, _common.silu(x), mask=offs < n)


# The interpreter evaluates sigmoid(-100) through numpy's exp(100), which overflows to inf
# (and gives the right 0); numpy warns about it, a GPU does not.
@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
def test_softplus_and_silu_follow_torch():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.tensor([-80.0, -30.0, -17.0, -1.0, -1e-4, 0.0, 1e-4, 1.0, 5.0, 19.99, 20.0, 20.01, 100.0],
                     device=device)
    softplus, silu = torch.empty_like(x), torch.empty_like(x)
    _apply_kernel[(1,)](x, softplus, silu, x.numel(), BLOCK=16)
    x64 = x.double()
    # Relative to each value, as softplus of very negative x is tiny but must not be lost
    # (-80 keeps exp(x) a normal float32). A GPU computes exp(x) as exp2(x * log2(e)), and
    # rounding that product costs up to |x| * log2(e) * 2**-24 relative: allow twice that
    # on top of a few float32 ulps.
    bound = 1e-6 + x64.abs() * 2.0**-23
    for name, out, expected in (("softplus", softplus, torch.nn.functional.softplus(x64)),
                                ("silu", silu, torch.nn.functional.silu(x64))):
        relative = (out.double() - expected).abs() / expected.abs().clamp_min(1e-30)
        assert (relative <= bound).all(), f"{name}: relative errors {relative.tolist()}"


def test_cpu_tensors_need_the_interpreter():
    not_interpreted = object()  # anything but an interpreted Triton function
    with pytest.raises(BackendUnavailableError, match="needs CUDA tensors, got tensors on cpu"):
        check_devices("op", not_interpreted, {"u": torch.zeros(1)})


def test_mixed_devices_are_named():
    with pytest.raises(InputShapeError, match="op: B is on meta, expected cpu like u"):
        check_devices("op", _apply_kernel,
                      {"u": torch.zeros(1), "A": None, "B": torch.empty(1, device="meta")})
