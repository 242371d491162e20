"""Run one ONNX model with the custom-op library under whichever onnxruntime this
interpreter imports (the compatibility test points PYTHONPATH at an older release).

    python ort_probe.py LIBRARY MODEL INPUTS.npz OUTPUTS.npz

Needs only numpy and onnxruntime. Prints one JSON line: the onnxruntime version and
the folder it was imported from, so the caller can check which release ran.
"""

import json
import sys

import numpy as np
import onnxruntime


def main(library: str, model: str, inputs_path: str, outputs_path: str) -> None:
    options = onnxruntime.SessionOptions()
    options.register_custom_ops_library(library)
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feeds = dict(np.load(inputs_path))
    names = [output.name for output in session.get_outputs()]
    np.savez(outputs_path, **dict(zip(names, session.run(names, feeds), strict=True)))
    print(json.dumps({"version": onnxruntime.__version__, "file": onnxruntime.__file__}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
