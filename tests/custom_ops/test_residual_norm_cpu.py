"""The ORT CPU kernel of ResidualRMSNorm against the float64 reference, and its bad inputs.

Tolerances and the error measure: norm_cases.py. Cases reach every branch of the
kernel: with and without the residual, rows of H below, at and above the kernel's
256-value conversion chunk, x of rank 1 to 4, empty rows, several tasks on the
session's threads. Bad inputs get exactly the message of the Python contract's
check_inputs(), and the session keeps working afterwards.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import shape_edits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from norm_cases import TOLERANCE, check_parity, make_inputs, run
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, InvalidGraph, RuntimeException
from shape_edits import assert_rejected_as_the_contract_says, with_shape

from mamba_export.ops.residual_norm import check_inputs
from tests.support.one_norm_node import residual_norm_model

DTYPES = tuple(TOLERANCE)
contract_message = partial(shape_edits.contract_message, check_inputs)

CASES = {
    "decode_130m": dict(shape=(64, 1, 768)),
    "prefill_130m": dict(shape=(1, 300, 768)),
    "chunk_255": dict(shape=(3, 255)),
    "chunk_256": dict(shape=(2, 2, 256)),
    "chunk_257": dict(shape=(2, 257)),
    "rank_1": dict(shape=(33,)),
    "rank_4": dict(shape=(2, 3, 4, 5)),
    "hidden_1": dict(shape=(5, 1)),
    "no_rows": dict(shape=(0, 4, 8)),
    "no_hidden": dict(shape=(2, 3, 0)),
    "large_values": dict(shape=(4, 64), scale=1e3),
    "small_values": dict(shape=(4, 64), scale=1e-3),
}


def on_cpu(make_session, io_dtype, residual, rank, threads=1):
    session = make_session(residual_norm_model(io_dtype, residual=residual, rank=rank), threads)
    return lambda inputs: run(session, inputs)


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("residual", [True, False], ids=["residual", "first_block"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(make_session, case, residual, io_dtype):
    spec = CASES[case]
    compute = on_cpu(make_session, io_dtype, residual, len(spec["shape"]), threads=2)
    check_parity(compute, io_dtype, residual=residual, **spec)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(io_dtype=st.sampled_from(DTYPES), residual=st.booleans(), rows=st.integers(0, 40),
       hidden=st.integers(1, 48), seed=st.integers(0, 2**31 - 1))
def test_fuzzed_against_reference(make_session, io_dtype, residual, rows, hidden, seed):
    compute = on_cpu(make_session, io_dtype, residual, 2)
    check_parity(compute, io_dtype, residual=residual, shape=(rows, hidden), seed=seed)


def test_half_precision_error_is_the_output_rounding(make_session):
    """float16 y is within one rounding of the float64 value, not more: a kernel that rounded
    s * inv to float16 before the weight (transformers' order) would double it."""
    compute = on_cpu(make_session, "float16", True, 3)
    _, error = check_parity(compute, "float16", shape=(8, 4, 768))
    assert error <= 2.0**-11


def test_epsilon_attribute_is_used(make_session):
    """A large epsilon changes y by a known amount: the kernel reads the node's attribute."""
    inputs = make_inputs(shape=(3, 16), seed=5, scale=0.1)
    session = make_session(residual_norm_model(epsilon=0.5, rank=2))
    check_parity(lambda feeds: run(session, feeds), "float32", epsilon=0.5, shape=(3, 16), seed=5, scale=0.1)
    default = make_session(residual_norm_model(epsilon=None, rank=2))
    assert not np.allclose(run(session, inputs)[0], run(default, inputs)[0], rtol=1e-3)


BAD_SHAPES = {
    "x rank 0": ("x", ()),
    "weight length": ("weight", (15,)),
    "weight rank 2": ("weight", (1, 16)),
    "residual rows": ("residual", (2, 4, 16)),
    "residual hidden": ("residual", (2, 3, 17)),
    "residual rank": ("residual", (6, 16)),
}


def test_bad_shapes_are_rejected_by_name_then_a_good_call_works(make_session):
    session = make_session(residual_norm_model(shaped=False), 2)
    good = make_inputs()
    for label, (name, shape) in BAD_SHAPES.items():
        feeds = with_shape(good, name, shape)
        expected = contract_message(feeds)
        assert expected is not None and name in expected, label
        assert_rejected_as_the_contract_says(session, feeds, expected, label)
    check_parity(lambda inputs: run(session, inputs), "float32")


@pytest.mark.parametrize(("name", "dtype"), [("residual", "float16"), ("residual", "float64")])
def test_wrong_residual_dtype_is_rejected_naming_the_input(make_session, name, dtype):
    with pytest.raises(InvalidGraph, match=rf"Type Error: Type .* of input parameter \({name}\)"):
        make_session(residual_norm_model("float16", dtypes={name: dtype}))


@pytest.mark.parametrize(("io_dtype", "name", "dtype"), [("float16", "weight", "float32"),
                                                         ("float32", "x", "float64")])
def test_x_and_weight_of_other_dtypes_are_refused_at_load(make_session, io_dtype, name, dtype):
    """x and weight share T: ONNX Runtime refuses a pair no kernel was registered for when it
    loads the graph (its message names the op, not the input), before any call."""
    with pytest.raises((InvalidGraph, Fail), match="ResidualRMSNorm"):
        make_session(residual_norm_model(io_dtype, dtypes={name: dtype}))


@pytest.mark.parametrize("epsilon", [-1.0, float("inf"), float("nan")])
def test_bad_epsilon_is_rejected_naming_the_attribute(make_session, epsilon):
    with pytest.raises((InvalidArgument, Fail, InvalidGraph, RuntimeException), match="attribute epsilon is"):
        session = make_session(residual_norm_model(epsilon=epsilon))
        run(session, make_inputs())
