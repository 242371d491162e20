"""Build and feed the C++ validation probes (custom_ops/tests/*_probe.cc).

Each op's validate.cc is compiled on its own with a small driver that reads one case per
line and prints one result per line; the message tests of every op compile and call their
probe the same way, so that lives here once.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CUSTOM_OPS = Path(__file__).resolve().parents[2] / "custom_ops"
DTYPES = ("float32", "float16", "bfloat16", "float64", "int64")


def build_probe(out_dir: Path, op_folder: str, probe_source: str) -> Path:
    """Compile custom_ops/<op_folder>/validate.cc with custom_ops/tests/<probe_source> into out_dir."""
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.fail("no C++ compiler found (c++, g++ or clang++); the library build needs one too")
    out = out_dir / Path(probe_source).stem
    command = [compiler, "-std=c++17", "-O1", f"-I{CUSTOM_OPS / 'include'}", f"-I{CUSTOM_OPS}",
               str(CUSTOM_OPS / op_folder / "validate.cc"),
               str(CUSTOM_OPS / "tests" / probe_source), "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out


def input_items(case: dict) -> list[str]:
    """The probe's "name:dtype:d0,d1,..." items for a case {name: (shape, dtype)}."""
    return [f"{name}:{dtype}:{','.join(str(d) for d in shape)}" for name, (shape, dtype) in case.items()]


def run_lines(probe: Path, lines: list[str]) -> list[str]:
    """Feed case lines to the probe; one result line per case."""
    result = subprocess.run([str(probe)], input="\n".join(lines) + "\n", capture_output=True, text=True,
                            check=True)
    return result.stdout.splitlines()
