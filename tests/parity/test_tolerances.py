"""The error measure and the tolerance rule."""

from __future__ import annotations

import numpy as np
import pytest

from mamba_export.parity.tolerances import (
    CEILING,
    FACTOR,
    FAILED,
    FLOOR,
    INCONCLUSIVE,
    PASSED,
    conclusive,
    judge,
    relative_error,
    tolerance,
)


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


def test_every_dtype_has_a_ceiling_above_its_floor():
    assert set(CEILING) == set(FLOOR)
    assert all(FLOOR[dtype] < CEILING[dtype] <= 0.25 for dtype in CEILING)
    assert CEILING["fp32"] <= CEILING["fp16"] <= CEILING["bf16"]


@pytest.mark.parametrize("dtype", sorted(CEILING))
def test_judge_passes_fails_and_is_inconclusive_above_the_ceiling(dtype):
    small = 1e-2 * CEILING[dtype] / FACTOR  # a baseline well inside the ceiling
    assert judge(small, small, dtype) == (PASSED, tolerance(small, dtype))
    assert judge(FACTOR * small + 2 * FLOOR[dtype], small, dtype)[0] == FAILED
    large = CEILING[dtype]  # PyTorch itself as far off as the ceiling: 8x that can pass anything
    assert not conclusive(large, dtype) and conclusive(small, dtype)
    assert judge(large, large, dtype)[0] == INCONCLUSIVE
    assert judge(10 * large, large, dtype)[0] == FAILED  # beyond even the loose tolerance
    assert judge(float("inf"), small, dtype)[0] == FAILED
    assert judge(0.0, float("nan"), dtype)[0] == FAILED  # no usable baseline is no pass


def test_random_float16_baselines_are_inconclusive():
    # PyTorch's float16 logits of mamba-130m with random weights are 26 to 77 % off float64.
    assert judge(0.3, 0.26, "fp16")[0] == INCONCLUSIVE
