"""Tiny exported models shared by the runtime, parity and validation tests.

Tracing takes seconds, so each variant (backend, dtype, logits mode, head) is
exported once per test session, whichever test folder asks first: the folders
are remembered here at module level, and the conftests of tests/runtime and
tests/parity and tests/export/test_validate.py all import these fixtures.
Exports skip their own validation: the parity suite is tested explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.support.tiny_models import tiny_model

_FOLDERS: dict = {}
_ROOT: list = []


def _export(tmp_path_factory, backend: str, dtype: str, logits: str, base: bool) -> Path:
    from mamba_export.export.convert import export
    from mamba_export.options import ExportOptions

    key = (backend, dtype, logits, "base" if base else "lm")
    if key not in _FOLDERS:
        if not _ROOT:
            _ROOT.append(tmp_path_factory.mktemp("tiny-exports"))
        options = ExportOptions(backend=backend, dtype=dtype, logits=logits, validate=False,
                                show_progress=False)
        _FOLDERS[key] = export(tiny_model(base=base), _ROOT[0] / "-".join(key), options)
    return _FOLDERS[key]


@pytest.fixture(scope="session")
def ops_library() -> str:
    """The custom-op library, built (incrementally) once per session unless the env var names one."""
    from mamba_export.runtime.library import ENV_VAR, build_library, get_library_path

    return get_library_path() if os.environ.get(ENV_VAR) else build_library()


@pytest.fixture(scope="session")
def exported(tmp_path_factory, request):
    """exported(backend="standard", dtype="fp32", logits="all", base=False) -> folder of the
    tiny model (tests.support.tiny_models.tiny_model(), seed 0) exported that way."""

    def get(backend: str = "standard", dtype: str = "fp32", logits: str = "all", base: bool = False) -> Path:
        if backend == "custom":
            request.getfixturevalue("ops_library")
        return _export(tmp_path_factory, backend, dtype, logits, base)

    return get


@pytest.fixture(scope="session")
def reference_model():
    """The PyTorch model every tiny export is made from (float32, eval)."""
    return tiny_model()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine the thread hand-offs
    cost more than the work (10x slower measured); the setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
