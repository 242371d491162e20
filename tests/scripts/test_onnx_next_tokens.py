"""scripts/onnx_next_tokens.py: a custom-backend export's LastArgMax node becomes ONNX's nodes, with the
same tokens, in place or in a copy; a graph without the node is refused. Also scripts/bench_last_argmax.py's
ONNX form is the exporter's three nodes (the benchmark itself is run by hand)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from mamba_export import graph_io
from mamba_export.errors import CustomOpsNotFoundError
from tests.support.prompts import tokens

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
SCRIPT = SCRIPTS / "onnx_next_tokens.py"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ops_library() -> str:
    from mamba_export.runtime.library import get_library_path

    try:
        return get_library_path()
    except CustomOpsNotFoundError as error:
        pytest.skip(f"custom-op library not built: {error}")


def next_tokens_of(folder: Path, library: str) -> np.ndarray:
    options = ort.SessionOptions()
    options.register_custom_ops_library(library)
    session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    ids = tokens(3, 7, seed=5)
    feeds = {graph_io.INPUT_IDS: ids, graph_io.ATTENTION_MASK: np.ones_like(ids)}
    for meta in session.get_inputs()[2:]:
        feeds[meta.name] = np.zeros([ids.shape[0] if isinstance(d, str) else d for d in meta.shape], np.float32)
    return session.run([graph_io.NEXT_TOKENS], feeds)[0]


def ours(folder: Path) -> list:
    model = onnx.load(folder / "model.onnx", load_external_data=False)
    return [node.op_type for node in model.graph.node if graph_io.NEXT_TOKENS in node.output
            or node.name.startswith("next_tokens/")]


@pytest.mark.parametrize("logits", ["all", "last"])
def test_a_copy_gets_onnx_nodes_and_the_same_tokens(export_tiny, ops_library, tmp_path, logits):
    folder = export_tiny(backend="custom", logits=logits, next_tokens=True)
    assert ours(folder) == ["LastArgMax"]
    copy = tmp_path / "onnx_form"
    subprocess.run([sys.executable, str(SCRIPT), str(folder), "--out", str(copy)], check=True,
                   cwd=SCRIPTS.parent)
    assert ours(folder) == ["LastArgMax"]  # the original is untouched
    assert ours(copy) == (["Gather", "ArgMax"] if logits == "all" else ["ArgMax"])
    outputs = [o.name for o in onnx.load(copy / "model.onnx", load_external_data=False).graph.output]
    assert outputs[-1] == graph_io.NEXT_TOKENS
    np.testing.assert_array_equal(next_tokens_of(copy, ops_library), next_tokens_of(folder, ops_library))


def test_in_place_and_a_second_time_is_refused(export_tiny, tmp_path):
    import shutil

    folder = tmp_path / "export"
    shutil.copytree(export_tiny(backend="custom", logits="all", next_tokens=True), folder)
    script = load("onnx_next_tokens")
    assert script.main([str(folder)]) == 0
    assert ours(folder) == ["Gather", "ArgMax"]
    with pytest.raises(SystemExit, match="written by ArgMax, not LastArgMax"):
        script.main([str(folder)])
    with pytest.raises(SystemExit, match="must be a new folder"):
        script.main([str(folder), "--out", str(folder)])


@pytest.mark.parametrize("io_dtype", ["float32", "float16"])
def test_the_benchmarks_onnx_form_is_the_exporters(io_dtype):
    model = load("bench_last_argmax").onnx_model(io_dtype)
    expected = ["Gather", "Cast", "ArgMax"] if io_dtype == "float16" else ["Gather", "ArgMax"]
    assert [node.op_type for node in model.graph.node] == expected
    assert [o.name for o in model.graph.output] == ["tokens"]
