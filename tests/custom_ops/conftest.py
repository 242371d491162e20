"""Fixtures of the custom-op tests: the library, built once per test session.

The library is (re)built incrementally through build_library() so the tests run
the current sources; a failing build fails the tests rather than skipping them.
Set MAMBA_EXPORT_OPS_LIBRARY to test a library built elsewhere instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# tests/ is not a package; the shared builders live in tests/support.
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.fixture(scope="session")
def ops_library() -> str:
    from mamba_export.runtime.library import ENV_VAR, build_library, get_library_path

    if os.environ.get(ENV_VAR):
        return get_library_path()
    return build_library()


@pytest.fixture(scope="session")
def make_session(ops_library):
    """make_session(model, threads=1) -> onnxruntime.InferenceSession on the CPU with our ops."""
    from scan_cases import cpu_session

    return lambda model, threads=1: cpu_session(model, ops_library, threads)
