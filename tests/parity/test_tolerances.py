"""The error measure and the tolerance rule."""

from __future__ import annotations

import numpy as np
import pytest

from mamba_export.parity.tolerances import FACTOR, FLOOR, relative_error, tolerance


def test_relative_error_is_max_abs_over_max_abs():
    ref = np.array([[1.0, -4.0], [2.0, 0.5]])
    out = ref + np.array([[0.0, 0.2], [-0.1, 0.0]])
    assert relative_error(out, ref) == pytest.approx(0.2 / 4.0)


def test_relative_error_edge_cases():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([0.0, 1e-3]), np.zeros(2)) == pytest.approx(1e-3)  # absolute
    assert relative_error(np.array([np.nan, 1.0]), np.ones(2)) == float("inf")
    assert relative_error(np.empty((0, 2)), np.empty((0, 2))) == 0.0
    with pytest.raises(ValueError, match="shapes"):
        relative_error(np.zeros(2), np.zeros(3))


def test_relative_error_of_half_precision_inputs():
    ref = np.array([1.0, 2.0])
    assert relative_error(ref.astype(np.float16), ref) == 0.0


def test_tolerance_rule():
    assert tolerance(0.0, "fp32") == FLOOR["fp32"]
    assert tolerance(1e-4, "fp16") == pytest.approx(FACTOR * 1e-4 + FLOOR["fp16"])
    assert FLOOR["fp32"] < FLOOR["fp16"] < FLOOR["bf16"]
