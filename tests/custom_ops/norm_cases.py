"""Inputs, the float64 oracle, the error measure and the ONNX Runtime runner shared
by the ResidualRMSNorm tests.

Error measure for y: max|y - ref| / max|ref|, with ref the float64 reference run on the
very values the implementation received (half-precision inputs rounded first). Each
row's s * inv has an RMS of 1, so with a weight of order 1 every row's values share the
scale of the maximum. Tolerances:
- float32 1e-5: the sum of H squares in float32 is off by at most about H * 2^-24
  (3e-6 relative for H = 48, our largest fuzzed row; summed pairwise in practice, far
  less), the square root halves that, then three roundings of 2^-24 ~ 6e-8.
- float16 1e-3: rounding y to float16 costs up to 2^-11 ~ 4.9e-4 of a value; 2x margin.
- bfloat16 1e-2: rounding to bfloat16's 8 significant bits costs 2^-8 ~ 3.9e-3; 2.5x margin.
residual_out is one float32 addition of float(x) and residual (both exact in float32),
so it must equal numpy's float32 sum bit for bit.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from mamba_export.ops.reference import residual_rms_norm as reference_norm
from tests.custom_ops.scan_cases import NUMPY_DTYPES, relative_error, run_into

TOLERANCE = {"float32": 1e-5, "float16": 1e-3, "bfloat16": 1e-2}
EPSILON = 1e-5


def make_inputs(shape=(2, 3, 16), residual=True, io_dtype="float32", seed=0, scale=1.0) -> dict:
    """Random inputs as numpy arrays: x and weight in io_dtype, residual float32 (larger than
    x, as a residual stream is)."""
    rng = np.random.default_rng(seed)
    io = NUMPY_DTYPES[io_dtype]
    inputs = {"x": (scale * rng.standard_normal(shape)).astype(io),
              "weight": rng.uniform(0.5, 1.5, shape[-1:]).astype(io)}
    if residual:
        inputs["residual"] = (3.0 * scale * rng.standard_normal(shape)).astype(np.float32)
    return inputs


def reference(inputs: dict, epsilon: float = EPSILON):
    """The float64 oracle on exactly these values -> (y, residual_out) as float64 numpy."""
    tensors = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in inputs.items()}
    y, total = reference_norm(tensors["x"], tensors["weight"], tensors.get("residual"), epsilon)
    return y.numpy(), total.numpy()


def exact_sum(inputs: dict) -> np.ndarray:
    """residual_out as the contract defines it: float(x) + residual in float32."""
    s = np.asarray(inputs["x"], dtype=np.float32)
    return s + inputs["residual"] if "residual" in inputs else s


def check_parity(compute, io_dtype: str, epsilon: float = EPSILON, **case):
    """Run ``compute(inputs) -> (y, residual_out)`` on one case and hold it to the float64
    reference; returns the inputs and the y error."""
    inputs = make_inputs(io_dtype=io_dtype, **case)
    y, total = compute(inputs)
    assert np.asarray(total).dtype == np.float32, "residual_out must be float32"
    y = np.asarray(y).astype(np.float64)
    ref_y, _ = reference(inputs, epsilon)
    assert y.shape == ref_y.shape and total.shape == ref_y.shape
    error = relative_error(y, ref_y)
    assert error <= TOLERANCE[io_dtype], f"y relative error {error:.3g} > {TOLERANCE[io_dtype]:g}"
    np.testing.assert_array_equal(total, exact_sum(inputs), err_msg="residual_out is not float(x) + residual")
    return inputs, error


def run(session: ort.InferenceSession, inputs: dict):
    """Run a one-node ResidualRMSNorm session -> (y in the I/O dtype, residual_out float32).

    The outputs are bound to numpy buffers we allocate because onnxruntime's Python API
    cannot hand out bfloat16 tensors as numpy arrays.
    """
    x = inputs["x"]
    y = np.empty(x.shape, dtype=x.dtype)
    total = np.empty(x.shape, dtype=np.float32)
    run_into(session, inputs, {"y": y, "residual_out": total})
    return y, total
