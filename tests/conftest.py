"""Fixtures shared by the whole suite: tiny saved models and their exports.

Exports are cached for the session: a dynamo export of a tiny model takes a few
seconds, and many tests read the same folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Triton reads TRITON_INTERPRET once, when it is first imported, and some test modules
# import it at collection; tests/kernels runs the kernels in the interpreter on a machine
# without a GPU, so the variable is set here, before any test module is collected
# (tests/kernels/conftest.py says why it is safe for the other folders).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Under pytest-xdist (the GPU round runs the CUDA op tests on 16 workers) each worker would start
# torch with one thread a core, so the workers' float64 references would fight over the cores: each
# worker takes its share instead.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The default tiny MambaForCausalLM saved as a transformers folder (safetensors)."""
    from tests.support.tiny_models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"), "default")


@pytest.fixture(scope="session")
def export_tiny(tmp_path_factory):
    """``export_tiny(name="default", base=False, **options) -> Path``: a cached export of a tiny model.

    ``options`` are ExportOptions fields; validation and progress output are off unless asked.
    """
    from mamba_export.export.convert import export
    from mamba_export.options import ExportOptions
    from tests.support.tiny_models import tiny_model

    cache: dict = {}

    def make(name: str = "default", base: bool = False, **options) -> Path:
        key = (name, base, tuple(sorted(options.items())))
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"export_{name}") / "out"
            settings = {"validate": False, "show_progress": False, **options}
            cache[key] = export(tiny_model(name, base=base), folder, ExportOptions(**settings))
        return cache[key]

    return make
