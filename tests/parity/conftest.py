"""Fixtures of the parity tests (see tests/runtime/fixtures.py): tiny exports, the library."""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.runtime.fixtures import (  # noqa: E402,F401  (fixtures are found by name)
    exported,
    one_torch_thread,
    ops_library,
    reference_model,
)
