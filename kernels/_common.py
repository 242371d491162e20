"""Pieces shared by the scan kernel and the decode-step kernel.

The two kernels must agree bit for bit on the elementwise math (softplus, the
gate) so that a prefill followed by decode steps matches one long scan; keeping
that math here is what guarantees it. The Python helpers check what Triton
itself would only report as an obscure launch failure (wrong device, mixed
devices).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from mamba_export.errors import BackendUnavailableError, InputShapeError
from mamba_export.ops.selective_scan import SOFTPLUS_THRESHOLD

_THRESHOLD = tl.constexpr(SOFTPLUS_THRESHOLD)


@triton.jit
def softplus(x):
    """torch's softplus (beta 1, threshold 20) in float32.

    Written as max(x, 0) + log1p(exp(-|x|)) so it neither overflows nor loses the
    small values of very negative x; log1p(e) is computed with the classic
    log(w) * e / (w - 1) correction because Triton has no portable log1p.
    """
    e = tl.exp(-tl.abs(x))
    w = 1.0 + e
    exact = w == 1.0
    log1p_e = tl.where(exact, e, tl.log(w) * (e / tl.where(exact, 1.0, w - 1.0)))
    return tl.where(x > _THRESHOLD, x, tl.maximum(x, 0.0) + log1p_e)


@triton.jit
def silu(x):
    return x * tl.sigmoid(x)


def dtype_name(tensor: torch.Tensor) -> str:
    """'float32' for torch.float32: the spelling the contract uses."""
    return str(tensor.dtype).removeprefix("torch.")


def runs_interpreted(kernel) -> bool:
    """True when ``kernel`` was decorated under TRITON_INTERPRET=1 (it then runs on CPU tensors)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(kernel, InterpretedFunction)


def check_devices(op_name: str, kernel, tensors: dict) -> torch.device:
    """All given tensors on one device, and one the kernel can run on; returns that device."""
    present = {name: t for name, t in tensors.items() if t is not None}
    devices = {name: t.device for name, t in present.items()}
    first_name, device = next(iter(devices.items()))
    for name, other in devices.items():
        if other != device:
            raise InputShapeError(
                f"{op_name}: {name} is on {other}, expected {device} like {first_name}"
            )
    if device.type != "cuda" and not runs_interpreted(kernel):
        raise BackendUnavailableError(
            f"{op_name}: the Triton kernel needs CUDA tensors, got tensors on {device}; "
            "use mamba_export.ops.reference.selective_scan on CPU, or set TRITON_INTERPRET=1 "
            "before triton is imported to run the kernel in Triton's (slow) interpreter"
        )
    return device


@functools.lru_cache(maxsize=None)
def _multiprocessors(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def launch_config(batch: int, dim: int, block_n: int, device: torch.device) -> tuple[int, int]:
    """(channels per program, warps per program) for a grid of (batch, channel blocks).

    Each step of the scan depends on the previous one, so a program spends its time
    waiting on memory, not computing: one warp per program, about four state values
    per thread, and blocks narrowed until there are at least two programs per
    multiprocessor to hide each other's waits. Measured on an H200 (D = 1536,
    N = 16, L = 2048): 4 channels a program at batch 1, 8 at batch 8, were the best
    of the sizes tried, about twice as fast as one 4-warp program of 16 channels.
    """
    block_d = min(max(1, 128 // block_n), triton.next_power_of_2(max(dim, 1)))
    programs_wanted = 2 * _multiprocessors(device.index or 0) if device.type == "cuda" else 1
    while block_d > 1 and batch * triton.cdiv(dim, block_d) < programs_wanted:
        block_d //= 2
    return block_d, 1
