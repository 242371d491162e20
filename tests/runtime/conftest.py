"""Fixtures of the runtime tests: see fixtures.py (exports come from tests/conftest.py)."""

from tests.runtime.fixtures import (  # noqa: F401  (fixtures are found by name)
    cpu_only_library,
    cuda_library,
    exported,
    one_torch_thread,
    ops_library,
    reference_model,
)
