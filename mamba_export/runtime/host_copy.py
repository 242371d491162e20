"""Reading each decode step's tokens to the host through the op library's own copy.

generate() on CUDA reads the tokens the step chose (batch int64s) once a token. Through
onnxruntime's ``OrtValue.numpy()`` that read cost 14 to 36 us on the H200 beside a 0.64 ms
batch-32 step (results/gpu/2026-12-02-lean-decode-scan/, the loop columns of decode_ab.json):
a new array, the provider's data transfer and its synchronisation, all while the GPU waits for
the next step. The CUDA build of our library exports ``mamba_export_ops_copy_to_host``, one
``cudaMemcpy`` into an array the runtime keeps (``custom_ops/common/host_copy.h``). ONNX Runtime
has synchronised its stream when a run returns, so the copy sees the step's tokens.

A session that loaded no library of ours (an export of standard ops), or an older build
without the function, reads through ``OrtValue.numpy()`` as before.
"""

from __future__ import annotations

import ctypes

import numpy as np

from mamba_export.errors import BackendUnavailableError

SYMBOL = "mamba_export_ops_copy_to_host"


class HostReader:
    """Copies small device OrtValues into host arrays with the library's ``SYMBOL``."""

    def __init__(self, copy, device: int):
        self.copy = copy  # (target, source, bytes, device) -> 0 or an error code
        self.device = int(device)

    @classmethod
    def for_library(cls, path: str, device: int) -> HostReader | None:
        """The reader of the library at ``path`` (the one the session registered: loading it again
        gives the same copy of it), or None if it cannot copy (no CUDA kernels, an older build)."""
        library = ctypes.CDLL(path)
        has_cuda = getattr(library, "mamba_export_ops_has_cuda", None)
        copy = getattr(library, SYMBOL, None)
        if has_cuda is None or copy is None or has_cuda() != 1:
            return None
        copy.restype = ctypes.c_int
        copy.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulonglong, ctypes.c_int)
        return cls(copy, device)

    def read(self, value, into: np.ndarray) -> np.ndarray:
        """Copies device OrtValue ``value`` into the C-contiguous ``into`` (same bytes) and returns it."""
        if not into.flags.c_contiguous or not into.flags.writeable:
            raise ValueError("the host array must be C-contiguous and writeable")
        error = self.copy(into.ctypes.data, value.data_ptr(), into.nbytes, self.device)
        if error != 0:
            raise BackendUnavailableError(
                f"copying {into.nbytes} bytes of the decode step's tokens from CUDA device {self.device} to the "
                f"host failed ({SYMBOL} returned {error}, a CUDA error code)")
        return into
