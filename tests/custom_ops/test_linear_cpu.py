"""The ORT CPU kernel of Linear against the float64 reference, and its bad inputs.

Tolerances and the error measure: linear_cases.py. Cases reach every branch of the kernel: one
task and many (columns split across the session's threads), x of rank 1 to 4, no rows, no
columns, K = 0 (zeros), the weight as a graph input and as an initializer. Bad inputs get
exactly the message of the Python contract's check_inputs(), and the session keeps working.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import shape_edits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from linear_cases import TOLERANCE, check_parity, make_inputs, run
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph
from shape_edits import assert_rejected_as_the_contract_says, with_shape

from mamba_export.ops.linear import check_inputs
from tests.support.one_linear_node import linear_model

DTYPES = tuple(TOLERANCE)
contract_message = partial(shape_edits.contract_message, check_inputs)

CASES = {
    "decode_in_proj_130m": dict(shape=(1, 1, 768), outer=3072),
    "decode_x_proj_b4": dict(shape=(4, 1, 1536), outer=80),
    "prefill_out_proj": dict(shape=(1, 64, 1536), outer=768),
    "dt_proj": dict(shape=(3, 5, 80), outer=1536),
    "rank_1": dict(shape=(33,), outer=7),
    "rank_4": dict(shape=(2, 3, 4, 5), outer=6),
    "inner_1": dict(shape=(5, 1), outer=9),
    "outer_1": dict(shape=(5, 40), outer=1),
    "no_rows": dict(shape=(0, 4, 8), outer=5),
    "no_columns": dict(shape=(2, 8), outer=0),
    "no_inner": dict(shape=(2, 3, 0), outer=4),
    "large_values": dict(shape=(4, 64), outer=16, scale=1e3),
}


def on_cpu(make_session, io_dtype, rank, threads=1, constant=None):
    """compute(inputs) through a session; ``constant``: the weight is an initializer (its value
    taken from the case's inputs when the model is built)."""
    def compute(inputs):
        weight = inputs["weight"] if constant else None
        session = make_session(linear_model(io_dtype, rank=rank, weight=weight), threads)
        return run(session, inputs)
    return compute


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("constant", [True, False], ids=["initializer", "graph_input"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(make_session, case, constant, io_dtype):
    spec = CASES[case]
    check_parity(on_cpu(make_session, io_dtype, len(spec["shape"]), threads=2, constant=constant), io_dtype,
                 **spec)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(io_dtype=st.sampled_from(DTYPES), rows=st.integers(0, 12), inner=st.integers(0, 70),
       outer=st.integers(0, 300), seed=st.integers(0, 2**31 - 1))
def test_fuzzed_against_reference(make_session, io_dtype, rows, inner, outer, seed):
    check_parity(on_cpu(make_session, io_dtype, 2, threads=2), io_dtype, shape=(rows, inner), outer=outer,
                 seed=seed)


def test_no_inner_gives_zeros(make_session):
    """Sums over nothing are 0, not whatever the output buffer held."""
    inputs = make_inputs(shape=(3, 0), outer=5)
    y = run(make_session(linear_model()), inputs)
    np.testing.assert_array_equal(y, np.zeros((3, 5), np.float32))


def test_half_precision_error_is_the_output_rounding(make_session):
    """float16 y is within one rounding of the float64 value: the sums are float32, not float16
    (a float16 accumulator over K = 1536 would be off by far more)."""
    _, error = check_parity(on_cpu(make_session, "float16", 3), "float16", shape=(2, 3, 1536), outer=64)
    assert error <= 2.0**-11


def test_threads_do_not_change_a_bit(make_session):
    """Columns are split across tasks, each dot product is one task's: the same bits on 1 or 2 threads."""
    inputs = make_inputs(shape=(8, 256), outer=1000, io_dtype="float16", seed=3)
    one = run(make_session(linear_model("float16"), 1), inputs)
    two = run(make_session(linear_model("float16"), 2), inputs)
    np.testing.assert_array_equal(one, two)


BAD_SHAPES = {
    "x rank 0": ("x", ()),
    "weight inner": ("weight", (24, 15)),
    "weight rank 1": ("weight", (16,)),
    "weight rank 3": ("weight", (1, 24, 16)),
}


def test_bad_shapes_are_rejected_by_name_then_a_good_call_works(make_session):
    session = make_session(linear_model(shaped=False), 2)
    good = make_inputs()
    for label, (name, shape) in BAD_SHAPES.items():
        feeds = with_shape(good, name, shape)
        expected = contract_message(feeds)
        assert expected is not None and name in expected, label
        assert_rejected_as_the_contract_says(session, feeds, expected, label)
    check_parity(lambda inputs: run(session, inputs), "float32")


@pytest.mark.parametrize(("io_dtype", "name", "dtype"), [("float16", "weight", "float32"),
                                                         ("float32", "x", "float64")])
def test_x_and_weight_of_other_dtypes_are_refused_at_load(make_session, io_dtype, name, dtype):
    """x and weight share T: ONNX Runtime refuses a pair no kernel was registered for when it
    loads the graph (its message names the op), before any call."""
    with pytest.raises((InvalidGraph, Fail), match="Linear"):
        make_session(linear_model(io_dtype, dtypes={name: dtype}))
