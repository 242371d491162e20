"""scripts/bench_decode_products.cu without a GPU: it compiles for sm_90, refuses bad arguments by name,
and says so when there is no GPU (an error line and exit 1, not a crash).

The timings need an H200 (scripts/bench_decode_products.sh on the GPU machine); nvcc alone builds it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "scripts" / "bench_decode_products.cu"
# The Linear op's launcher and the dependent-launch switch it times.
LIBRARY_SOURCES = [ROOT / "custom_ops" / "linear" / name for name in ("cuda.cu", "cuda_tile.cu")] + [
    ROOT / "custom_ops" / "common" / "dependent_launch.cu"]


def find_nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found is None and Path("/usr/local/cuda/bin/nvcc").is_file():
        found = "/usr/local/cuda/bin/nvcc"
    return found


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> Path:
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("no nvcc: the benchmark cannot be compiled here")
    out = tmp_path_factory.mktemp("bench") / "bench_decode_products"
    built = subprocess.run([nvcc, "-O1", "-std=c++17", "-arch=sm_90", "-cudart", "static",
                            f"-I{ROOT / 'custom_ops'}", f"-I{ROOT / 'custom_ops' / 'include'}", "-o", str(out),
                            str(SOURCE), *map(str, LIBRARY_SOURCES), "-ldl"], capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    return out


def run(binary: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "mamba-7b", "--cublas", "x.so"], "unknown --config mamba-7b"),
        (["--config", "mamba-130m"], "--cublas PATH"),
        (["--cublas", "x.so", "--batches", "1,two"], "positive integers"),
        (["--cublas", "x.so", "--batches", "1,,4"], "positive integers"),
        (["--cublas", "x.so", "--steps", "0"], "must be positive"),
        (["--cublas", "x.so", "--frobnicate"], "unknown argument --frobnicate"),
        (["--cublas"], "--cublas wants a value"),
    ],
)
def test_bad_arguments_are_named(binary, args, message):
    result = run(binary, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_no_gpu_is_an_error_not_a_crash(binary):
    result = run(binary, "--cublas", "/nonexistent/libcublas.so", "--batches", "1")
    # Without a GPU the first CUDA call fails; with one, loading a missing cuBLAS does. Either way: one line.
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "cudaGetDeviceProperties" in result.stderr or "cannot load cuBLAS" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
