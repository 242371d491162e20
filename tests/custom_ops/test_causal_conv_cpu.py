"""Parity of the ORT CPU kernel of CausalConv1d with the float64 reference.

Tolerances and the error measure: conv_cases.py (float32 1e-6, float16 1e-3, bfloat16
1e-2 of the float32 sum's magnitude; new_conv_state bit-exact).
"""

from __future__ import annotations

import numpy as np
import pytest
from conv_cases import ALL_OPTIONAL, TOLERANCE, check_parity, fuzzed_cases, make_inputs, reference, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.one_conv_node import causal_conv_model

DTYPES = tuple(TOLERANCE)

# name -> make_inputs arguments; every case runs with and without SiLU, in every dtype.
CASES = {
    "plain": dict(),
    "width_1": dict(width=1),
    "width_2": dict(width=2),
    "width_7_generic": dict(width=7, length=20),
    "width_20_heap_taps": dict(width=20, length=30, channels=5),
    "length_0": dict(length=0),
    "length_1_decode": dict(length=1, channels=130),
    "length_2": dict(length=2, width=4),
    "odd_channels_over_blocks": dict(channels=131, length=7),
    "long": dict(batch=1, length=1000, channels=24),
    "every_position_dropped": dict(drop=1.0),
    "no_optional": dict(present=()),
    "only_mask": dict(present=("mask",)),
    "only_state": dict(present=("conv_state",)),
    "only_bias": dict(present=("bias",)),
    "empty_batch": dict(batch=0),
    "no_channels": dict(channels=0),
}


def ort_compute(make_session, io_dtype, present, threads=1):
    def compute(inputs, activation):
        session = make_session(causal_conv_model(io_dtype, present=present, activation=activation), threads)
        return run(session, inputs)
    return compute


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("activation", [0, 1], ids=["none", "silu"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(make_session, case, activation, io_dtype):
    args = CASES[case]
    compute = ort_compute(make_session, io_dtype, args.get("present", ALL_OPTIONAL))
    check_parity(compute, io_dtype, activation, **args)


def test_length_0_passes_the_state_through_and_zeros_without_one(make_session):
    inputs = make_inputs(length=0)
    y, state = run(make_session(causal_conv_model()), inputs)
    assert y.shape == (2, 0, 6)
    np.testing.assert_array_equal(state, inputs["conv_state"])
    no_state = {k: v for k, v in inputs.items() if k != "conv_state"}
    _, zeros = run(make_session(causal_conv_model(present=("bias", "mask"))), no_state)
    np.testing.assert_array_equal(zeros, np.zeros((2, 6, 3), np.float32))


def test_chained_calls_equal_one_call(make_session):
    """Prefill in two pieces with the state carried equals one call, for every split."""
    session = make_session(causal_conv_model(activation=1))
    inputs = make_inputs(batch=3, length=13, channels=70)
    whole_y, whole_state = run(session, inputs)
    for split in (0, 1, 2, 6, 13):
        first = {k: (v[:, :split] if k in ("x", "mask") else v) for k, v in inputs.items()}
        y1, middle = run(session, first)
        second = {k: (v[:, split:] if k in ("x", "mask") else v) for k, v in inputs.items()} | {"conv_state": middle}
        y2, state = run(session, second)
        np.testing.assert_array_equal(np.concatenate([y1, y2], axis=1), whole_y, err_msg=f"split {split}")
        np.testing.assert_array_equal(state, whole_state, err_msg=f"split {split}")


def test_threads_do_not_change_results(make_session):
    """Blocks are independent, so four threads must give the bits one thread gives."""
    inputs = make_inputs(batch=4, length=300, channels=200)
    single = run(make_session(causal_conv_model(activation=1), 1), inputs)
    parallel = run(make_session(causal_conv_model(activation=1), 4), inputs)
    for a, b in zip(single, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_missing_attribute_means_no_activation(make_session):
    inputs = make_inputs(poison=False, present=("bias", "conv_state"))
    y, _ = run(make_session(causal_conv_model(present=("bias", "conv_state"), activation=None)), inputs)
    scale = np.max(np.abs(reference(inputs, 0)[0]))
    assert np.max(np.abs(y - reference(inputs, 0)[0])) <= 1e-6 * scale
    assert np.max(np.abs(y - reference(inputs, 1)[0])) > 1e-2 * scale


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=fuzzed_cases(), activation=st.sampled_from([0, 1]), io_dtype=st.sampled_from(DTYPES))
def test_fuzzed_shapes_masks_and_optional_inputs(make_session, case, activation, io_dtype):
    check_parity(ort_compute(make_session, io_dtype, case["present"]), io_dtype, activation, **case)
