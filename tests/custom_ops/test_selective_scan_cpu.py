"""Parity of the ORT CPU kernel of SelectiveScan with the float64 reference scan.

Tolerances (relative error as defined in scan_cases.relative_error):
- last_state is float32 for every I/O dtype and is compared with the reference run
  on the same (already rounded) inputs, so only float32 arithmetic separates them:
  1e-5 for all dtypes.
- y in float32: 1e-5 (float32 accumulation over up to 2048 steps stays near 1e-7).
- y in float16: 5e-3; rounding y to float16 alone costs up to 2^-11 ~ 4.9e-4.
- y in bfloat16: 2^-7 ~ 7.8e-3; rounding y to bfloat16's 8-bit mantissa alone costs
  up to 2^-9 ~ 2e-3 of the largest output, so 2^-7 leaves a 4x margin, as 5e-3 does
  for float16's 4.9e-4 rounding plus the exp and silu evaluations.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scan_cases import (
    Y_TOLERANCE,
    check_parity,
    cpu_session,
    fuzzed_cases,
    make_inputs,
    reference,
    relative_error,
    run,
)
from support.one_node import selective_scan_model

DTYPES = tuple(Y_TOLERANCE)

# name -> make_inputs arguments; every case runs with softplus on and off, in every dtype.
CASES = {
    "length_1": dict(length=1),
    "length_2048": dict(batch=1, dim=4, length=2048, state=16),
    "batch_3": dict(batch=3, dim=6, length=9),
    "groups_b": dict(dim=8, groups_b=2),
    "groups_c": dict(dim=8, groups_c=4),
    "groups_both_per_channel": dict(dim=6, groups_b=3, groups_c=6),
    "no_D": dict(present=("z", "delta_bias", "initial_state")),
    "no_z": dict(present=("D", "delta_bias", "initial_state")),
    "no_delta_bias": dict(present=("D", "z", "initial_state")),
    "no_initial_state": dict(present=("D", "z", "delta_bias")),
    "no_optional": dict(present=()),
    "zero_initial_state": dict(initial_zero=True),
    "length_0": dict(length=0),
    "length_0_no_initial_state": dict(length=0, present=("D", "z", "delta_bias")),
    "state_8": dict(state=8),
    "state_16": dict(state=16, length=40),
    "state_32": dict(state=32),
    "state_5_generic": dict(state=5, length=30),
    "state_64_generic": dict(state=64),
    "empty_batch": dict(batch=0),
}


@pytest.mark.parametrize("layout", [0, 1], ids=["channels_first", "channels_last"])
@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("delta_softplus", [False, True], ids=["linear", "softplus"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(make_session, case, delta_softplus, io_dtype, layout):
    check_parity(make_session, io_dtype, delta_softplus, layout=layout, **CASES[case])


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("case", ["batch_3", "groups_both_per_channel", "state_16", "length_1"])
def test_channels_last_gives_the_channels_first_results_transposed(make_session, case, io_dtype):
    """The same values in either layout: the same bits of y (transposed) and of last_state."""
    first = check_parity(make_session, io_dtype, True, layout=0, **CASES[case])
    last = check_parity(make_session, io_dtype, True, layout=1, **CASES[case])
    np.testing.assert_array_equal(last[0], np.transpose(first[0], (0, 2, 1)))
    np.testing.assert_array_equal(last[1], first[1])


def test_length_0_returns_initial_state(make_session):
    inputs = make_inputs(length=0)
    y, last_state = run(make_session(selective_scan_model()), inputs)
    assert y.shape == (2, 8, 0)
    np.testing.assert_array_equal(last_state, inputs["initial_state"])


def test_length_0_without_initial_state_returns_zeros(make_session):
    inputs = make_inputs(length=0, present=())
    _, last_state = run(make_session(selective_scan_model(present=())), inputs)
    np.testing.assert_array_equal(last_state, np.zeros((2, 8, 4)))


@pytest.mark.parametrize("layout", [0, 1], ids=["channels_first", "channels_last"])
def test_threads_do_not_change_results(make_session, layout):
    """Rows are independent, so two threads must give the bits one thread gives."""
    case = dict(batch=2, dim=64, length=100, state=16, layout=layout)
    single = check_parity(make_session, "float32", True, threads=1, **case)
    parallel = check_parity(make_session, "float32", True, threads=2, **case)
    for a, b in zip(single, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_softplus_threshold_is_torchs(make_session):
    """Around x = 20 softplus switches from log1p(exp(x)) to x, exactly as torch does."""
    inputs = make_inputs(batch=1, dim=3, length=6, state=2, present=(), delta_softplus=True)
    inputs["delta"] = np.array([[[19.0, 19.99, 20.0, 20.01, 25.0, -30.0]]] * 3, np.float32).reshape(1, 3, 6)
    inputs["A"] = np.full((3, 2), -1e-3, np.float32)  # keeps exp(dt * A) away from 0
    model = selective_scan_model(present=(), delta_softplus=1)
    y, last_state = run(make_session(model), inputs)
    ref_y, ref_state = reference(inputs, True)
    assert relative_error(y, ref_y) <= 1e-6
    assert relative_error(last_state, ref_state) <= 1e-6


def test_missing_attribute_means_no_softplus(make_session):
    inputs = make_inputs()
    y, _ = run(make_session(selective_scan_model(delta_softplus=None)), inputs)
    assert relative_error(y, reference(inputs, False)[0]) <= 1e-5
    assert relative_error(y, reference(inputs, True)[0]) > 1e-2


def test_saved_model_file_loads_with_registered_library(ops_library, tmp_path):
    """The user's path: a model file on disk, the library registered by path."""
    import onnxruntime as ort

    path = tmp_path / "selective_scan.onnx"
    onnx.save(selective_scan_model(delta_softplus=1), path)
    options = ort.SessionOptions()
    options.register_custom_ops_library(ops_library)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = make_inputs(delta_softplus=True)
    y, last_state = session.run(None, inputs)
    ref_y, ref_state = reference(inputs, True)
    assert relative_error(y, ref_y) <= 1e-5
    assert relative_error(last_state, ref_state) <= 1e-5


def test_session_helper_uses_our_library(ops_library):
    session = cpu_session(selective_scan_model(), ops_library)
    assert [i.name for i in session.get_inputs()] == ["u", "delta", "A", "B", "C", "D", "z",
                                                      "delta_bias", "initial_state"]


# Short sequences: the fuzzing is about shapes, groups and optional inputs.
scan_shapes = partial(fuzzed_cases, lengths=st.integers(0, 40), states=st.integers(1, 20))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=scan_shapes(), delta_softplus=st.booleans(), io_dtype=st.sampled_from(DTYPES))
def test_fuzzed_shapes_and_values(make_session, case, delta_softplus, io_dtype):
    check_parity(make_session, io_dtype, delta_softplus, **case)
