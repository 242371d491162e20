"""Fixtures shared by the runtime and parity tests (imported by their conftests).

Exports come from the suite-wide, session-cached ``export_tiny`` of tests/conftest.py;
``exported`` only adds the custom-op library (built once per session) for the
custom backend and passes nothing but the options that differ from the defaults,
so the exporter's tests and these share folders.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mamba_export.options import ExportOptions
from tests.support.tiny_models import tiny_model

_DEFAULTS = ExportOptions()


@pytest.fixture(scope="session")
def ops_library() -> str:
    """The custom-op library, built (incrementally) once per session unless the env var names one."""
    from mamba_export.runtime.library import ENV_VAR, build_library, get_library_path

    return get_library_path() if os.environ.get(ENV_VAR) else build_library()


@pytest.fixture(scope="session")
def cpu_only_library() -> str:
    """A library built without CUDA kernels: build/custom_ops as it is, else built there once
    (a machine without the ONNX Runtime headers can be handed a built one)."""
    from mamba_export.errors import CustomOpsNotFoundError
    from mamba_export.runtime.library import LIBRARY_NAME, build_library, default_build_dir, has_cuda_kernels

    built = default_build_dir() / LIBRARY_NAME
    path = str(built) if built.is_file() else build_library()
    try:
        has_cuda = has_cuda_kernels(path)
    except CustomOpsNotFoundError:  # an older build that cannot answer: bring it up to date
        path = build_library()
        has_cuda = has_cuda_kernels(path)
    if has_cuda:
        pytest.fail(f"{path} should be the CPU-only build but holds CUDA kernels")
    return path


@pytest.fixture(scope="session")
def cuda_library() -> str:
    """A library built with CUDA kernels ($MAMBA_EXPORT_OPS_LIBRARY or build/custom_ops_cuda);
    building one needs nvcc but no GPU, so tests that only load it skip when it is not built."""
    from mamba_export.runtime.library import ENV_VAR, LIBRARY_NAME, cuda_build_dir, has_cuda_kernels

    for candidate in (os.environ.get(ENV_VAR), str(cuda_build_dir() / LIBRARY_NAME)):
        if candidate and Path(candidate).is_file() and has_cuda_kernels(candidate):
            return candidate
    pytest.skip("no custom-op library with CUDA kernels is built (mamba-export build-ops --cuda)")


@pytest.fixture(scope="session")
def exported(export_tiny, request):
    """exported(backend="standard", dtype="fp32", logits="all", base=False, name="default") ->
    folder of ``tests.support.tiny_models.tiny_model(name, base)`` exported so (no validation)."""

    def get(backend: str = "standard", dtype: str = "fp32", logits: str = "all", base: bool = False,
            name: str = "default") -> Path:
        if backend == "custom":
            request.getfixturevalue("ops_library")
        chosen = dict(backend=backend, dtype=dtype, logits=logits)
        options = {key: value for key, value in chosen.items() if getattr(_DEFAULTS, key) != value}
        return export_tiny(name, base=base, **options)

    return get


@pytest.fixture(scope="session")
def reference_model():
    """The PyTorch model every default tiny export is made from (float32, eval)."""
    return tiny_model()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine the thread hand-offs
    cost more than the work (10x slower measured); the setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
