"""The custom-op library's compatibility promise: built against ONNX Runtime's C API
version 21, it loads and computes the same in that release and every newer one.

Checked on the installed onnxruntime and on older releases that pip installs (once)
into build/ort_compat/ with --target; each runs in its own interpreter through
ort_probe.py, with PYTHONPATH pointing at that release.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper

from mamba_export.ops import reference
from mamba_export.ops.selective_scan import DOMAIN, INPUT_NAMES, OP_TYPE, OP_VERSION, OUTPUT_NAMES
from tests.examples.runners import PROMPT, REPO

PROBE = Path(__file__).with_name("ort_probe.py")
# The oldest release with C API 21 (the one the library is built against) and one between it
# and the installed release; docs/deploy.md records the outcome.
OLDER_RELEASES = ("1.21.1", "1.23.2")
# The newest release before C API 21: the library must refuse it with a message, not crash.
TOO_OLD_RELEASE = "1.20.1"
# float32 against the float64 oracle over a 9-step scan: rounding stays near 1e-6; 1e-5 leaves margin.
SCAN_TOLERANCE = 1e-5
# The same float32 graph on two releases may pick different kernels (other summation orders).
CROSS_RELEASE_TOLERANCE = 1e-5


def install_release(version: str) -> Path:
    """build/ort_compat/onnxruntime-VERSION, holding that release (pip install --target, no deps)."""
    target = REPO / "build" / "ort_compat" / f"onnxruntime-{version}"
    if not (target / "onnxruntime" / "__init__.py").is_file():
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--target", str(target), f"onnxruntime=={version}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            pytest.fail(f"pip could not install onnxruntime=={version}: {result.stderr[-2000:]}")
    return target


def start_probe(library: str, model: Path, feeds: dict, workdir: Path,
                release_dir: Path | None) -> subprocess.CompletedProcess:
    """Run ort_probe.py under the release in release_dir (None: the installed one)."""
    np.savez(workdir / "inputs.npz", **feeds)
    env = dict(os.environ)
    if release_dir is not None:
        env["PYTHONPATH"] = str(release_dir)
    command = [sys.executable, str(PROBE), library, str(model), "inputs.npz", "outputs.npz"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=workdir)


def run_probe(library: str, model: Path, feeds: dict, workdir: Path,
              release_dir: Path | None) -> tuple[dict, dict]:
    """(outputs, {"version", "file"}) of one session under the release in release_dir (None: installed)."""
    result = start_probe(library, model, feeds, workdir, release_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(np.load(workdir / "outputs.npz")), json.loads(result.stdout.strip().splitlines()[-1])


# Every input of the plain form (layout 0): delta_weight, the projected form's, needs layout 1.
PLAIN_INPUTS = [name for name in INPUT_NAMES if name != "delta_weight"]


def scan_model(path: Path) -> None:
    """One SelectiveScan node with every optional input of the plain form, float32 I/O."""
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in PLAIN_INPUTS]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in OUTPUT_NAMES]
    node = helper.make_node(OP_TYPE, PLAIN_INPUTS, list(OUTPUT_NAMES), domain=DOMAIN, delta_softplus=1)
    graph = helper.make_graph([node], "one_scan", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                    helper.make_opsetid(DOMAIN, OP_VERSION)])
    model.ir_version = 8  # readable by every release under test
    onnx.save(model, path)


def scan_inputs(seed: int = 0) -> dict:
    batch, dim, length, state = 2, 6, 9, 4
    rng = np.random.default_rng(seed)
    sequence = (batch, dim, length)
    shapes = {"u": sequence, "delta": sequence, "A": (dim, state), "B": (batch, state, length),
              "C": (batch, state, length), "D": (dim,), "z": sequence, "delta_bias": (dim,),
              "initial_state": (batch, dim, state)}
    feeds = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    feeds["A"] = -np.exp(feeds["A"])  # negative, as in trained models: a stable scan
    return feeds


def relative_error(actual, expected) -> float:
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected)) / np.max(np.abs(expected)))


def check_scan(library: str, workdir: Path, release_dir: Path | None) -> str:
    model = workdir / "scan.onnx"
    scan_model(model)
    feeds = scan_inputs()
    outputs, probe = run_probe(library, model, feeds, workdir, release_dir)
    y, last_state = reference.selective_scan(**{k: torch.from_numpy(v).double() for k, v in feeds.items()},
                                             delta_softplus=True)
    assert relative_error(outputs["y"], y.numpy()) < SCAN_TOLERANCE
    assert relative_error(outputs["last_state"], last_state.numpy()) < SCAN_TOLERANCE
    return probe["version"]


def test_installed_release(ops_library, tmp_path):
    assert check_scan(ops_library, tmp_path, None) == onnxruntime.__version__


@pytest.mark.slow
@pytest.mark.parametrize("version", OLDER_RELEASES)
def test_older_release_runs_the_scan(ops_library, tmp_path, version):
    release_dir = install_release(version)
    assert check_scan(ops_library, tmp_path, release_dir) == version


@pytest.mark.slow
def test_release_before_api_21_is_refused_with_a_message(ops_library, tmp_path):
    model = tmp_path / "scan.onnx"
    scan_model(model)
    result = start_probe(ops_library, model, scan_inputs(), tmp_path, install_release(TOO_OLD_RELEASE))
    assert result.returncode != 0
    expected = ("needs ONNX Runtime API version 21 (ONNX Runtime 1.21 or newer); "
                f"this runtime is {TOO_OLD_RELEASE}")
    assert expected in result.stderr, result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("version", OLDER_RELEASES)
def test_older_release_runs_an_exported_model(ops_library, exported, tmp_path, version):
    """The tiny custom-op export gives the installed release's outputs on an older one."""
    folder = exported("custom")
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"],
                                           sess_options=_options_with(ops_library))
    feeds = {}
    for spec in session.get_inputs():
        if spec.name == "input_ids":
            feeds[spec.name] = np.array([PROMPT], dtype=np.int64)
        elif spec.name == "attention_mask":
            feeds[spec.name] = np.ones((1, len(PROMPT)), dtype=np.int64)
        else:  # past states: zeros start a fresh prompt; float32 in this export
            feeds[spec.name] = np.zeros([1, *spec.shape[1:]], dtype=np.float32)
    names = [output.name for output in session.get_outputs()]
    expected = dict(zip(names, session.run(names, feeds), strict=True))
    outputs, probe = run_probe(ops_library, folder / "model.onnx", feeds, tmp_path, install_release(version))
    assert probe["version"] == version
    for name in names:
        assert relative_error(outputs[name], expected[name]) < CROSS_RELEASE_TOLERANCE, name


def _options_with(library: str) -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    options.register_custom_ops_library(library)
    return options
