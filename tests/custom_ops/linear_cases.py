"""Inputs, the float64 oracle, the error measure and the ONNX Runtime runner shared by the
Linear tests.

Error measure: max|y - ref| / max|ref|, with ref the float64 product of the very values the
implementation received (half-precision inputs rounded first). Tolerances:
- float32 2e-5: a dot product of K float32 products drifts by about sqrt(K) roundings of 2^-24
  for random signs (K = 4096: 3.8e-6 of the largest value); 5x margin.
- float16 1e-3: rounding y to float16 costs up to 2^-11 ~ 4.9e-4 of a value; 2x margin.
- bfloat16 1e-2: rounding to bfloat16's 8 significant bits costs 2^-8 ~ 3.9e-3; 2.5x margin.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from mamba_export.ops.reference import linear as reference_linear
from tests.custom_ops.scan_cases import NUMPY_DTYPES, relative_error, run_into

TOLERANCE = {"float32": 2e-5, "float16": 1e-3, "bfloat16": 1e-2}


def make_inputs(shape=(2, 3, 16), outer=24, io_dtype="float32", seed=0, scale=1.0) -> dict:
    """x (shape) and weight (outer, shape[-1]) in io_dtype; the weight scaled by 1/sqrt(K) so y
    has the scale of x, as a trained projection's has."""
    rng = np.random.default_rng(seed)
    io = NUMPY_DTYPES[io_dtype]
    inner = shape[-1]
    return {"x": (scale * rng.standard_normal(shape)).astype(io),
            "weight": (rng.standard_normal((outer, inner)) / np.sqrt(max(inner, 1))).astype(io)}


def reference(inputs: dict) -> np.ndarray:
    """y from the float64 oracle (mamba_export.ops.reference.linear) on exactly these values."""
    tensors = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in inputs.items()}
    return reference_linear(tensors["x"], tensors["weight"]).numpy()


def check_parity(compute, io_dtype: str, **case):
    """Run ``compute(inputs) -> y`` on one case and hold it to the float64 reference; returns the
    inputs and the error."""
    inputs = make_inputs(io_dtype=io_dtype, **case)
    y = np.asarray(compute(inputs)).astype(np.float64)
    ref = reference(inputs)
    assert y.shape == ref.shape, f"y is {y.shape}, expected {ref.shape}"
    assert np.isfinite(y).all(), "y holds values the kernel did not write"
    error = relative_error(y, ref) if ref.size else 0.0
    assert error <= TOLERANCE[io_dtype], f"y relative error {error:.3g} > {TOLERANCE[io_dtype]:g}"
    return inputs, error


def run(session: ort.InferenceSession, inputs: dict) -> np.ndarray:
    """Run a one-node Linear session (feeding weight only if the graph takes it) -> y. The output
    is bound to a numpy buffer we allocate: onnxruntime cannot hand out bfloat16 arrays."""
    x, weight = inputs["x"], inputs["weight"]
    y = np.empty(x.shape[:-1] + weight.shape[:1], dtype=x.dtype)
    names = {i.name for i in session.get_inputs()}
    run_into(session, {k: v for k, v in inputs.items() if k in names}, {"y": y})
    return y
