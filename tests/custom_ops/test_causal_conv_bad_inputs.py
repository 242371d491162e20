"""Malformed inputs to the ORT CPU kernel of CausalConv1d: an error that names the input, never a crash.

The graph inputs are declared without shapes so malformed tensors reach the kernel's
own checks (causal_conv/validate.cc) instead of ONNX Runtime's input validation; the
kernel's message must be exactly the one the Python contract's check_inputs() gives,
and the session must keep working afterwards.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import shape_edits
from conv_cases import check_parity, make_inputs, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, RuntimeException
from shape_edits import assert_rejected_as_the_contract_says, perturb_shapes, with_shape

from mamba_export.ops.causal_conv import check_inputs
from tests.support.one_conv_node import causal_conv_model

contract_message = partial(shape_edits.contract_message, check_inputs)


BAD_SHAPES = {
    "x rank 2": ("x", (9, 6)),
    "x rank 4": ("x", (2, 9, 6, 1)),
    "weight channels": ("weight", (5, 4)),
    "weight width 0": ("weight", (6, 0)),
    "weight rank 1": ("weight", (6,)),
    "bias length": ("bias", (7,)),
    "bias rank 0": ("bias", ()),
    "conv_state columns": ("conv_state", (2, 6, 4)),
    "conv_state batch": ("conv_state", (3, 6, 3)),
    "mask length": ("mask", (2, 8)),
    "mask rank 3": ("mask", (2, 9, 1)),
}


@pytest.fixture(scope="module")
def shapeless_session(make_session):
    return make_session(causal_conv_model(shaped=False, activation=1), 2)


def test_bad_shapes_are_rejected_by_name_then_a_good_call_works(shapeless_session):
    good = make_inputs()
    for label, (name, shape) in BAD_SHAPES.items():
        feeds = with_shape(good, name, shape)
        expected = contract_message(feeds)
        assert expected is not None and name in expected, label
        assert_rejected_as_the_contract_says(shapeless_session, feeds, expected, label)
    check_parity(lambda inputs, _: run(shapeless_session, inputs), "float32", 1)


@pytest.mark.parametrize(("name", "dtype"), [("weight", "float16"), ("bias", "float64"), ("mask", "int32"),
                                             ("mask", "float32"), ("x", "float64")])
def test_wrong_dtype_is_rejected_naming_the_input(make_session, name, dtype):
    with pytest.raises(InvalidGraph, match=rf"Type Error: Type .* of input parameter \({name}\)"):
        make_session(causal_conv_model(dtypes={name: dtype}))


def test_state_dtype_other_than_x_matches_no_kernel(make_session):
    with pytest.raises(Fail, match="no kernel def matches node"):
        make_session(causal_conv_model(dtypes={"conv_state": "float16"}))


@pytest.mark.parametrize("missing", ["x", "weight"])
def test_missing_required_input_is_rejected_at_load(make_session, missing):
    index = ["x", "weight"].index(missing)
    required = tuple(name for name in ("x", "weight") if name != missing)
    with pytest.raises(InvalidGraph, match=rf"input {index} is marked single but has an empty string"):
        make_session(causal_conv_model(required=required))


def test_activation_outside_the_table_is_rejected_when_the_kernel_is_created(make_session):
    message = r"CausalConv1d: attribute activation is 2, expected one of 0 \(none\), 1 \(silu\)"
    with pytest.raises(RuntimeException, match=message):
        make_session(causal_conv_model(activation=2))


def test_activation_of_another_type_is_rejected(make_session):
    from onnx import helper

    model = causal_conv_model(activation=None)
    model.graph.node[0].attribute.append(helper.make_attribute("activation", 1.0))
    with pytest.raises(RuntimeException, match="CausalConv1d: attribute activation must be an int"):
        make_session(model)


@st.composite
def perturbed_feeds(draw):
    """Valid inputs with one or two tensors given another rank or size."""
    feeds = make_inputs(batch=draw(st.integers(1, 2)), length=draw(st.integers(0, 5)),
                        channels=draw(st.integers(1, 5)), width=draw(st.integers(1, 4)),
                        seed=draw(st.integers(0, 99)))
    return perturb_shapes(draw, feeds)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(feeds=perturbed_feeds())
def test_fuzzed_shapes_error_exactly_as_the_contract(shapeless_session, feeds):
    expected = contract_message(feeds)
    if expected is None:
        y, _ = shapeless_session.run(None, feeds)
        assert y.shape == feeds["x"].shape
        return
    assert_rejected_as_the_contract_says(shapeless_session, feeds, expected)


# x read at an offset of a wider (B, L, W) tensor (make_inputs: C = 6, K = 4).
BAD_PACKED_SHAPES = {
    "window past W": ("x", (2, 9, 8)),       # x_offset 3 + C 6 needs W >= 9
    "x rank 2": ("x", (9, 12)),
    "weight rank 1": ("weight", (6,)),
    "conv_state of another C": ("conv_state", (2, 7, 3)),
}


def test_bad_packed_shapes_are_rejected_naming_offset_and_width(make_session):
    session = make_session(causal_conv_model(shaped=False, activation=1, x_offset=3), 1)
    good = make_inputs()
    good["x"] = np.concatenate([np.zeros((2, 9, 3), good["x"].dtype), good["x"]], axis=2)
    assert contract_message(good, x_offset=3) is None
    for label, (name, shape) in BAD_PACKED_SHAPES.items():
        feeds = with_shape(good, name, shape)
        expected = contract_message(feeds, x_offset=3)
        assert expected is not None and name in expected, label
        assert_rejected_as_the_contract_says(session, feeds, expected, label)
    assert contract_message(with_shape(good, "x", (2, 9, 8)), x_offset=3) == (
        "CausalConv1d: x is (2, 9, 8): x_offset = 3 with width C = 6 (from weight) needs W >= 9")


def test_x_offset_below_minus_1_is_rejected(make_session):
    message = "CausalConv1d: attribute x_offset is -2, expected -1 (the whole x) or an offset >= 0"
    session = make_session(causal_conv_model(shaped=False, x_offset=-2), 1)
    assert_rejected_as_the_contract_says(session, make_inputs(), message)
    assert contract_message(make_inputs(), x_offset=-2) == message
