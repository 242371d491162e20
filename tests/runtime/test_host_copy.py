"""The runtime's read of each decode step's tokens through the op library (runtime/host_copy.py).

The copy itself needs a GPU (tests/runtime/test_cuda_runtime.py::test_tokens_read_through_the_library);
here: which builds can copy, the arguments the reader passes, and that every failure is an error
that names it, never a crash or a silently stale array.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from mamba_export.errors import BackendUnavailableError
from mamba_export.runtime.host_copy import SYMBOL, HostReader


class _Value:
    """Stands in for a device OrtValue: only its address is read."""

    def __init__(self, address: int):
        self.address = address

    def data_ptr(self) -> int:
        return self.address


def _raw_copy(path: str):
    copy = getattr(ctypes.CDLL(path), SYMBOL)
    copy.restype = ctypes.c_int
    copy.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulonglong, ctypes.c_int)
    return copy


def test_cpu_only_build_cannot_copy(cpu_only_library):
    assert HostReader.for_library(cpu_only_library, 0) is None
    target, source = np.zeros(4, np.int64), np.arange(4, dtype=np.int64)
    assert _raw_copy(cpu_only_library)(target.ctypes.data, source.ctypes.data, 32, 0) == -1
    assert _raw_copy(cpu_only_library)(None, None, 0, 0) == -1
    assert (target == 0).all()


def test_cuda_build_copies_nothing_without_a_call_to_cuda(cuda_library):
    """Zero bytes succeed before any CUDA call (so also on a machine without a GPU)."""
    assert _raw_copy(cuda_library)(None, None, 0, 0) == 0


def test_a_library_without_the_function_cannot_copy():
    import ctypes.util

    libm = ctypes.util.find_library("m")
    if libm is None:
        pytest.skip("no libm to stand in for an older build")
    assert HostReader.for_library(libm, 0) is None


def test_cuda_build_gives_a_reader_that_refuses_null_pointers(cuda_library):
    reader = HostReader.for_library(cuda_library, 0)
    assert reader is not None and reader.device == 0
    with pytest.raises(BackendUnavailableError, match=rf"copying 16 bytes .* device 0 .*{SYMBOL} returned -1"):
        reader.read(_Value(0), np.zeros((2, 1), np.int64))


def test_reader_passes_addresses_and_sizes():
    calls = []

    def copy(target, source, size, device):
        calls.append((target, source, size, device))
        np.ctypeslib.as_array(ctypes.cast(target, ctypes.POINTER(ctypes.c_int64)), (size // 8,))[:] = 7
        return 0

    into = np.zeros((3, 1), np.int64)
    out = HostReader(copy, 2).read(_Value(1234), into)
    assert out is into and (into == 7).all()
    assert calls == [(into.ctypes.data, 1234, 24, 2)]


def test_a_cuda_error_is_named():
    into = np.full((2, 1), -5, np.int64)
    with pytest.raises(BackendUnavailableError, match=r"device 1 .*returned 700"):
        HostReader(lambda *args: 700, 1).read(_Value(8), into)
    assert (into == -5).all()


@pytest.mark.parametrize("make", [lambda: np.zeros((4, 2), np.int64)[:, :1], lambda: np.zeros((2, 1), np.int64)],
                         ids=["strided", "read_only"])
def test_host_array_must_be_contiguous_and_writeable(make):
    into = make()
    into.flags.writeable = into.flags.c_contiguous is False
    with pytest.raises(ValueError, match="C-contiguous and writeable"):
        HostReader(lambda *args: 0, 0).read(_Value(8), into)
