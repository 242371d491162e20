"""The ONNX runtimes the standard-ops graph is proven on, behind one call each.

``--backend standard`` exists for runtimes that cannot load our library, so its
tests run the same graph on every runtime named in docs/deploy.md: ONNX Runtime,
ONNX's own reference evaluator and OpenVINO. Each runner takes an ONNX model (a
path or a ModelProto) and NumPy feeds by input name, and returns the outputs by
name. A runtime that is not installed skips the test with the reason.

OpenVINO's CPU plugin computes in bfloat16 on CPUs that have it unless told
otherwise, which is a precision choice and not the graph's; its runner asks for
float32 (``INFERENCE_PRECISION_HINT``), as docs/deploy.md tells users to.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest

RUNTIMES = ("onnxruntime", "onnx.reference", "openvino")


def run_onnxruntime(model, feeds: dict) -> dict:
    import onnxruntime as ort

    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


def run_reference(model, feeds: dict) -> dict:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(model if isinstance(model, onnx.ModelProto) else str(model))
    return dict(zip(evaluator.output_names, evaluator.run(None, feeds), strict=True))


def run_openvino(model, feeds: dict) -> dict:
    ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install -e '.[dev]')")
    core = ov.Core()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        if isinstance(model, onnx.ModelProto):
            onnx.save(model, str(path))
        else:
            path = Path(model)
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    results = compiled(feeds)
    # An OpenVINO output may carry several tensor names (the graph output's among them).
    return {name: np.asarray(results[output]) for output in compiled.outputs for name in output.get_names()}


RUNNERS = {"onnxruntime": run_onnxruntime, "onnx.reference": run_reference, "openvino": run_openvino}


def run(runtime: str, model, feeds: dict) -> dict:
    """Outputs by name of ``model`` run on ``runtime`` (one of RUNTIMES) with ``feeds``."""
    return RUNNERS[runtime](model, feeds)

