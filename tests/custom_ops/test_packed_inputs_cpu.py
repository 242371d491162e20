"""Packed inputs on the CPU kernels: SelectiveScan's b_offset / c_offset / z_offset and
CausalConv1d's x_offset read windows of wider tensors (packed_cases.py says how the
windows are checked: NaN around them, the plain run's bits expected)."""

from __future__ import annotations

import pytest
from conv_cases import check_parity as check_conv_parity
from conv_cases import fuzzed_cases as conv_cases
from conv_cases import run as run_conv_plain
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packed_cases import check_packed_conv, check_packed_scan
from scan_cases import Y_TOLERANCE, check_parity, make_inputs

from tests.support.one_conv_node import causal_conv_model

DTYPES = tuple(Y_TOLERANCE)


@st.composite
def packed_scan_cases(draw):
    """Channels-last ungrouped cases, lengths on both sides of the CPU row path's limit (2 or 4)."""
    length = draw(st.one_of(st.integers(0, 4), st.integers(5, 80)))
    return dict(batch=draw(st.integers(1, 3)), dim=draw(st.integers(1, 40)), length=length,
                state=draw(st.integers(1, 20)),
                present=tuple(n for n in ("D", "z", "delta_bias", "initial_state") if draw(st.booleans())),
                seed=draw(st.integers(0, 2**31 - 1)), layout=1)


def _scan(make_session, case, io_dtype, delta_softplus, shared_bc):
    plain = check_parity(make_session, io_dtype, delta_softplus, **case)
    inputs = make_inputs(io_dtype=io_dtype, delta_softplus=delta_softplus, **case)
    check_packed_scan(make_session, inputs, plain, io_dtype, delta_softplus, case["seed"], shared_bc)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=packed_scan_cases(), io_dtype=st.sampled_from(DTYPES), shared_bc=st.booleans())
def test_fuzzed_packed_scan_gives_the_plain_bits(make_session, case, io_dtype, shared_bc):
    # Softplus on, as every Mamba layer runs it: without it a negative dt grows the state
    # (exp(dt * A) > 1), whose float32 error is the plain scan's concern, not the packing's.
    _scan(make_session, case, io_dtype, True, shared_bc)


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("length", [1, 300], ids=["decode", "prefill"])
def test_packed_scan_on_a_layer_of_mamba_130m_shapes(make_session, io_dtype, length):
    """x_proj's output (dt, B, C) feeding B and C, in_proj's second half feeding z."""
    case = dict(batch=3 if length == 1 else 1, dim=96, length=length, state=16, seed=3, layout=1)
    _scan(make_session, case, io_dtype, True, shared_bc=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=conv_cases(lengths=st.integers(0, 40), channels=st.integers(1, 70)),
       activation=st.sampled_from([0, 1]), io_dtype=st.sampled_from(DTYPES))
def test_fuzzed_packed_conv_gives_the_plain_bits(make_session, case, activation, io_dtype):
    present = case["present"]

    def compute(inputs, act):
        return run_conv_plain(make_session(causal_conv_model(io_dtype, present=present, activation=act)), inputs)

    inputs, plain = check_conv_parity(compute, io_dtype, activation, **case)
    check_packed_conv(make_session, inputs, plain, io_dtype, activation, case["seed"])

