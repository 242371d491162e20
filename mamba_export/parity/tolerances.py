"""Every tolerance of the parity suite, with the reason for its value.

An export is judged against the float64 oracle relative to how far the PyTorch
model itself is from it when run in the export's dtype (the *baseline*). A fixed
bound cannot work: rounding grows with the sequence length and differs by
orders of magnitude between float32, float16 and bfloat16 (on the mamba-130m
shapes with random weights, transformers in float32 is already 2.5e-4 from
float64 at L = 1024). So an output passes when

    error <= FACTOR * baseline + FLOOR[dtype]

with both errors measured the same way (:func:`relative_error`).
"""

from __future__ import annotations

import numpy as np

# The export may be this many times further from the oracle than PyTorch in the
# same dtype. Different but equally valid summation orders (ONNX Runtime's GEMMs,
# the custom op's float32 scan, fused kernels) give errors of the same size as
# PyTorch's, not equal ones; a wrong graph (a missing mask, a state not carried,
# a corrupted weight) is off by orders of magnitude, far beyond 4x.
FACTOR = 4.0

# Absolute floor on the relative error, per export dtype: 4 units in the last
# place at 1.0 (machine epsilon 2**-23, 2**-10, 2**-7). Errors this small are the
# rounding of a few operations (the export's outputs are themselves stored in its
# dtype), where the baseline can be accidentally tiny and a ratio means nothing.
FLOOR = {"fp32": 4 * 2.0 ** -23, "fp16": 4 * 2.0 ** -10, "bf16": 4 * 2.0 ** -7}

# Generated tokens must match the PyTorch float32 greedy run exactly, except at
# a divergence where the float64 oracle itself cannot tell the two candidates
# apart: their logits differ by less than the logits tolerance at that point
# (FACTOR * baseline + FLOOR, measured on the same prefix), so either choice is
# within rounding. The run is compared up to that point.
GREEDY_MISMATCHES_ALLOWED = 0


def relative_error(output, reference) -> float:
    """max|output - reference| / max|reference| over the whole tensor, in float64.

    A zero reference (e.g. a zero state) is compared absolutely.
    """
    out = np.asarray(output, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if out.shape != ref.shape:
        raise ValueError(f"cannot compare shapes {out.shape} and {ref.shape}")
    if ref.size == 0:
        return 0.0
    diff = np.abs(out - ref).max()
    if not np.isfinite(diff):
        return float("inf")
    scale = np.abs(ref).max()
    return float(diff / scale) if scale > 0 else float(diff)


def tolerance(baseline: float, dtype: str) -> float:
    """The largest error an export in ``dtype`` may have when PyTorch has ``baseline``."""
    return FACTOR * baseline + FLOOR[dtype]
