"""Inputs, the float64 oracle, the error measure and the ONNX Runtime runner shared
by the CausalConv1d tests.

Error measure: max|out - ref| / scale, with ref the float64 reference run on the
very values the implementation received (half-precision inputs are rounded first)
and scale the largest float32 sum magnitude, max over outputs of
|bias| + sum_k |weight * window|. Rounding in a float32 sum of K + 1 terms is
bounded by a few units of 2^-24 times that magnitude, and SiLU never grows it
(|silu(v)| <= |v|), so the measure stays meaningful when a sum cancels to nearly 0.
Tolerances:
- float32 1e-6: K <= 4 products and K additions, the bias and SiLU's exp and
  division: under ten float32 roundings of 2^-24 ~ 6e-8 each.
- float16 1e-3: rounding y to float16 costs up to 2^-11 ~ 4.9e-4 of the output; 2x margin.
- bfloat16 1e-2: rounding to bfloat16's 8 significant bits costs up to 2^-8 ~ 3.9e-3; 2.5x margin.
new_conv_state is a copy of inputs (masked ones as 0), so it must match exactly.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from mamba_export.ops.causal_conv import INPUTS
from mamba_export.ops.reference import causal_conv1d as reference_conv
from tests.custom_ops.scan_cases import NUMPY_DTYPES, run_into

TOLERANCE = {"float32": 1e-6, "float16": 1e-3, "bfloat16": 1e-2}
ALL_OPTIONAL = tuple(spec.name for spec in INPUTS if not spec.required)


def make_inputs(batch=2, length=9, channels=6, width=4, present=ALL_OPTIONAL, io_dtype="float32", seed=0,
                drop=0.3, poison=True) -> dict:
    """Random inputs as numpy arrays, x and conv_state already in io_dtype.

    With a mask, each position is dropped with probability ``drop`` (anywhere: left
    padding, holes, whole rows), and ``poison`` puts inf and NaN into x at dropped
    positions, which must never reach an output.
    """
    rng = np.random.default_rng(seed)
    io = NUMPY_DTYPES[io_dtype]
    inputs = {
        "x": rng.standard_normal((batch, length, channels)).astype(io),
        "weight": (rng.standard_normal((channels, width)) / np.sqrt(width)).astype(np.float32),
        "bias": rng.standard_normal(channels).astype(np.float32),
        "conv_state": rng.standard_normal((batch, channels, width - 1)).astype(io),
        "mask": (rng.random((batch, length)) >= drop).astype(np.int64) * rng.integers(1, 3, (batch, length)),
    }
    if poison and "mask" in present:
        dropped = inputs["mask"] == 0
        poison_values = np.where(rng.random(dropped.shape) < 0.5, np.inf, np.nan).astype(io)
        inputs["x"][dropped] = poison_values[dropped][:, None]
    return {k: v for k, v in inputs.items() if k in ("x", "weight") or k in present}


def reference(inputs: dict, activation: int):
    """The float64 oracle on exactly these values -> (y, new_conv_state) as float64 numpy."""
    tensors = {k: torch.from_numpy(np.asarray(v, dtype=np.int64 if k == "mask" else np.float64))
               for k, v in inputs.items()}
    y, state = reference_conv(**tensors, activation=activation)
    return y.numpy(), state.numpy()


def sum_scale(inputs: dict) -> float:
    """max over outputs of |bias| + sum_k |weight * window|: the magnitude of the float32 sums."""
    tensors = {k: torch.from_numpy(np.asarray(v, dtype=np.int64 if k == "mask" else np.float64))
               for k, v in inputs.items()}
    magnitude = {k: (v.abs() if k != "mask" else v) for k, v in tensors.items()}
    v, _ = reference_conv(**magnitude, activation=0)
    return float(v.abs().max()) if v.numel() else 0.0


def conv_error(out, ref, inputs: dict) -> float:
    """max|out - ref| / sum_scale(inputs) (the absolute difference when the scale is 0)."""
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    if ref.size == 0:
        return 0.0
    diff = float(np.max(np.abs(out - ref)))
    scale = sum_scale(inputs)
    return diff / scale if scale > 0 else diff


def check_parity(compute, io_dtype: str, activation: int, **case):
    """Run ``compute(inputs, activation) -> (y, new_conv_state)`` on one case and hold it to the
    float64 reference; returns the inputs and the outputs as float64."""
    inputs = make_inputs(io_dtype=io_dtype, **case)
    y, state = (np.asarray(a).astype(np.float64) for a in compute(inputs, activation))
    ref_y, ref_state = reference(inputs, activation)
    assert y.shape == ref_y.shape and state.shape == ref_state.shape
    assert np.all(np.isfinite(y)), "a non-finite y (inf/NaN under the mask leaked?)"
    error = conv_error(y, ref_y, inputs)
    assert error <= TOLERANCE[io_dtype], f"y relative error {error:.3g} > {TOLERANCE[io_dtype]:g}"
    np.testing.assert_array_equal(state, ref_state, err_msg="new_conv_state is not the window's tail")
    return inputs, (y, state)


def fuzzed_cases(lengths=None, channels=None):
    """A hypothesis strategy of cases (keyword arguments of ``make_inputs``): B 0..3, L 0..17,
    C 1..13, K 1..4, any subset of the optional inputs, masks with zeros anywhere."""
    from hypothesis import strategies as st

    lengths = lengths if lengths is not None else st.integers(0, 17)
    channels = channels if channels is not None else st.integers(1, 13)

    @st.composite
    def case(draw):
        return dict(
            batch=draw(st.integers(0, 3)),
            length=draw(lengths),
            channels=draw(channels),
            width=draw(st.integers(1, 4)),
            present=tuple(name for name in ALL_OPTIONAL if draw(st.booleans())),
            drop=draw(st.sampled_from([0.0, 0.3, 1.0])),
            seed=draw(st.integers(0, 2**31 - 1)),
        )

    return case()


def run(session: ort.InferenceSession, inputs: dict):
    """Run a one-node CausalConv1d session -> (y, new_conv_state) in the I/O dtype.

    The outputs are bound to numpy buffers we allocate because onnxruntime's Python
    API cannot hand out bfloat16 tensors as numpy arrays.
    """
    x = inputs["x"]
    batch, _, channels = x.shape
    y = np.empty(x.shape, dtype=x.dtype)
    state = np.empty((batch, channels, inputs["weight"].shape[-1] - 1), dtype=x.dtype)
    run_into(session, inputs, {"y": y, "new_conv_state": state})
    return y, state
