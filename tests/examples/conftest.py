"""Fixtures of the embedding-example tests: the tiny model exported per backend, the
custom-op library, and the programs under test (the C++ runner built from scratch once
per session, the Node.js runner with its packages installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.examples.runners import NODE_EXAMPLE, REPO, TEST_MODEL
from tests.support.tiny_models import tiny_model


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """exported(backend, logits="all", dtype="fp32") -> the tiny model exported so (cached)."""
    from mamba_export.export.convert import export
    from mamba_export.options import ExportOptions

    folders: dict = {}

    def get(backend: str, logits: str = "all", dtype: str = "fp32") -> Path:
        key = (backend, logits, dtype)
        if key not in folders:
            out = tmp_path_factory.mktemp(f"tiny-{backend}-{logits}-{dtype}") / "model"
            options = ExportOptions(backend=backend, logits=logits, dtype=dtype, validate=False,
                                    show_progress=False)
            folders[key] = Path(export(tiny_model(*TEST_MODEL), out, options))
        return folders[key]

    return get


@pytest.fixture(scope="session")
def ops_library() -> str:
    from mamba_export.runtime.library import get_library_path

    return get_library_path()


@pytest.fixture(scope="session")
def cpp_runner(tmp_path_factory) -> Path:
    """mamba_generate, built from scratch into a temporary folder with scripts/build_cpp_example.sh."""
    build_dir = tmp_path_factory.mktemp("cpp-build")
    env = {**os.environ, "MAMBA_CPP_EXAMPLE_BUILD_DIR": str(build_dir)}
    result = subprocess.run(["bash", str(REPO / "scripts" / "build_cpp_example.sh")], capture_output=True,
                            text=True, timeout=900, env=env)
    if result.returncode != 0:
        pytest.fail(f"scripts/build_cpp_example.sh failed (exit {result.returncode}):\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    program = Path(result.stdout.strip().splitlines()[-1])
    assert program.is_file(), f"the build script reported {program}, which does not exist"
    return program


@pytest.fixture(scope="session")
def node_runner() -> list:
    """The command that runs examples/node/generate.js, installing its packages with npm ci if needed."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (needed for examples/node)")
    if not (NODE_EXAMPLE / "node_modules" / "onnxruntime-node").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("examples/node/node_modules is missing and npm is not installed to create it "
                        "(run `npm ci --prefix examples/node`)")
        result = subprocess.run([npm, "ci", "--prefix", str(NODE_EXAMPLE), "--no-audit", "--no-fund"],
                                capture_output=True, text=True, timeout=600,
                                env={**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"})
        if result.returncode != 0:
            pytest.fail(f"npm ci --prefix examples/node failed:\n{result.stderr[-3000:]}")
    return [node, str(NODE_EXAMPLE / "generate.js")]
