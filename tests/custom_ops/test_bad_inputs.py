"""Malformed inputs to the ORT CPU kernel: an error that names the input, never a crash.

The graph inputs are declared without shapes so malformed tensors reach the
kernel's own checks (validate.cc) instead of ONNX Runtime's input validation; the
kernel's message must be exactly the one the Python contract's check_inputs() gives.
Dtypes are fixed per registration, so ONNX Runtime itself rejects a wrong dtype
when the session is created, as it does a required input left empty.
"""

from __future__ import annotations

import re
from functools import partial

import pytest
import shape_edits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnxruntime.capi.onnxruntime_pybind11_state import (
    Fail,
    InvalidGraph,
    RuntimeException,
)
from scan_cases import make_inputs, reference, relative_error, run
from shape_edits import assert_rejected_as_the_contract_says, perturb_shapes, with_shape
from support.one_node import selective_scan_model

from mamba_export.errors import InputShapeError
from mamba_export.ops.selective_scan import check_inputs

contract_message = partial(shape_edits.contract_message, check_inputs)


BAD_SHAPES = {
    "u rank 2": ("u", (8, 16)),
    "delta longer": ("delta", (2, 8, 17)),
    "delta batch": ("delta", (3, 8, 16)),
    "A rank 3": ("A", (8, 4, 1)),
    "A channels": ("A", (7, 4)),
    "B state": ("B", (2, 5, 16)),
    "B rank 5": ("B", (2, 1, 1, 4, 16)),
    "B groups do not divide D": ("B", (2, 3, 4, 16)),
    "C zero groups": ("C", (2, 0, 4, 16)),
    "C length": ("C", (2, 4, 15)),
    "D length": ("D", (9,)),
    "D rank 0": ("D", ()),
    "z shape": ("z", (2, 8, 15)),
    "delta_bias rank 2": ("delta_bias", (8, 1)),
    "initial_state state": ("initial_state", (2, 8, 5)),
}


@pytest.fixture(scope="module")
def shapeless_session(make_session):
    return make_session(selective_scan_model(shaped=False), 2)


def test_bad_shapes_are_rejected_by_name_then_a_good_call_works(shapeless_session):
    """Every bad call in one process and one session; the session still works afterwards."""
    good = make_inputs()
    for label, (name, shape) in BAD_SHAPES.items():
        feeds = with_shape(good, name, shape)
        expected = contract_message(feeds)
        assert expected is not None, label
        assert name in expected, label
        assert_rejected_as_the_contract_says(shapeless_session, feeds, expected, label)
    y, last_state = run(shapeless_session, good)
    ref_y, ref_state = reference(good, False)
    assert relative_error(y, ref_y) <= 1e-5 and relative_error(last_state, ref_state) <= 1e-5


@pytest.mark.parametrize(("name", "dtype"), [("A", "float16"), ("initial_state", "float16"),
                                             ("D", "float64"), ("u", "float64"), ("z", "int64")])
def test_wrong_dtype_is_rejected_naming_the_input(make_session, name, dtype):
    with pytest.raises(InvalidGraph, match=rf"Type Error: Type .* of input parameter \({name}\)"):
        make_session(selective_scan_model(dtypes={name: dtype}))


def test_io_dtypes_that_disagree_match_no_kernel(make_session):
    """u float32 with delta float16 fits no registration; ORT says so at load time."""
    with pytest.raises(Fail, match="no kernel def matches node"):
        make_session(selective_scan_model(dtypes={"delta": "float16"}))


@pytest.mark.parametrize("missing", ["u", "delta", "A", "B", "C"])
def test_missing_required_input_is_rejected_at_load(make_session, missing):
    """ORT checks required inputs when it loads the graph and names the input's position."""
    index = ["u", "delta", "A", "B", "C"].index(missing)
    required = tuple(name for name in ("u", "delta", "A", "B", "C") if name != missing)
    with pytest.raises(InvalidGraph, match=rf"input {index} is marked single but has an empty string"):
        make_session(selective_scan_model(required=required))


def test_attribute_outside_0_1_is_rejected_when_the_kernel_is_created(make_session):
    message = "SelectiveScan: attribute delta_softplus is 3, expected 0 or 1"
    with pytest.raises(RuntimeException, match=message):
        make_session(selective_scan_model(delta_softplus=3))


def test_unknown_layout_is_rejected_when_the_kernel_is_created(make_session):
    message = r"SelectiveScan: attribute layout is 2, expected 0 \(channels first\) or 1 \(channels last\)"
    with pytest.raises(RuntimeException, match=message):
        make_session(selective_scan_model(layout=2))
    with pytest.raises(InputShapeError, match=message):
        check_inputs({}, layout=2)


BAD_CHANNELS_LAST_SHAPES = {
    "u channels first": ("u", (2, 8, 16)),  # A says D = 8; u's last axis must be it
    "B channels first": ("B", (2, 4, 16)),
    "B rank 5": ("B", (2, 16, 1, 1, 4)),
    "C groups do not divide D": ("C", (2, 16, 3, 4)),
    "z shape": ("z", (2, 15, 8)),
    "initial_state state": ("initial_state", (2, 8, 5)),
}


def test_bad_channels_last_shapes_are_rejected_by_name(make_session):
    session = make_session(selective_scan_model(shaped=False, layout=1), 1)
    good = make_inputs(layout=1)
    assert contract_message(good, layout=1) is None
    for label, (name, shape) in BAD_CHANNELS_LAST_SHAPES.items():
        feeds = with_shape(good, name, shape)
        expected = contract_message(feeds, layout=1)
        assert expected is not None and name in expected, label
        assert_rejected_as_the_contract_says(session, feeds, expected, label)


@st.composite
def perturbed_feeds(draw):
    """Valid inputs with one or two tensors given another rank or size."""
    dims = dict(batch=draw(st.integers(1, 2)), dim=draw(st.sampled_from([2, 4, 6])),
                length=draw(st.integers(0, 5)), state=draw(st.integers(1, 4)))
    feeds = make_inputs(**dims, groups_b=draw(st.sampled_from([0, 2])), seed=draw(st.integers(0, 99)))
    return perturb_shapes(draw, feeds)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(feeds=perturbed_feeds())
def test_fuzzed_shapes_error_exactly_as_the_contract(shapeless_session, feeds):
    expected = contract_message(feeds)
    if expected is None:
        y, last_state = shapeless_session.run(None, feeds)
        assert y.shape == feeds["u"].shape
        return
    assert_rejected_as_the_contract_says(shapeless_session, feeds, expected)


def test_attribute_of_another_type_is_rejected(make_session):
    from onnx import helper

    model = selective_scan_model(delta_softplus=None)
    model.graph.node[0].attribute.append(helper.make_attribute("delta_softplus", 1.0))
    with pytest.raises(RuntimeException, match="SelectiveScan: attribute delta_softplus must be an int"):
        make_session(model)


# Packed inputs: B, C and z read at an offset of a wider (B, L, W) tensor. Each case is a
# model's offset attributes, then the input and the shape it is fed with (None: as valid).
BAD_OFFSETS = {
    "B window past W": ({"b_offset": 3}, "B", (2, 16, 6)),
    "C window past W": ({"c_offset": 0}, "C", (2, 16, 3)),
    "z window past W": ({"z_offset": 9}, "z", (2, 16, 16)),
    "grouped B at an offset": ({"b_offset": 0}, "B", (2, 16, 2, 4)),
    "packed B of another length": ({"b_offset": 1}, "B", (2, 15, 8)),
    "packed z of another batch": ({"z_offset": 8}, "z", (3, 16, 16)),
}


def test_bad_packed_inputs_are_rejected_naming_input_offset_and_width(make_session):
    """An offset window that does not fit its tensor: the message names the input, the
    attribute and its value, and the width W it needs."""
    good = make_inputs(layout=1)
    for label, (offsets, name, shape) in BAD_OFFSETS.items():
        session = make_session(selective_scan_model(shaped=False, layout=1, offsets=offsets), 1)
        feeds = with_shape(good, name, shape)
        expected = contract_message(feeds, layout=1, offsets=offsets)
        assert expected is not None and name in expected, label
        assert_rejected_as_the_contract_says(session, feeds, expected, label)
    expected = contract_message(with_shape(good, "B", (2, 16, 6)), layout=1, offsets={"b_offset": 3})
    assert expected == "SelectiveScan: B is (2, 16, 6): b_offset = 3 with width 4 needs W >= 7"


@pytest.mark.parametrize(("attributes", "message"), [
    (dict(layout=0, offsets={"z_offset": 8}),
     "SelectiveScan: attribute z_offset is 8: offsets need layout 1 (channels last), the layout is 0"),
    (dict(layout=1, offsets={"c_offset": -2}),
     "SelectiveScan: attribute c_offset is -2, expected -1 (the whole input) or an offset >= 0"),
])
def test_offsets_the_layout_or_value_forbids_are_rejected(make_session, attributes, message):
    """Offsets need channels last; below -1 there is no offset. Both fail on the first call,
    with the contract's message."""
    layout = attributes["layout"]
    session = make_session(selective_scan_model(shaped=False, **attributes), 1)
    feeds = make_inputs(layout=layout)
    assert_rejected_as_the_contract_says(session, feeds, message)
    with pytest.raises(InputShapeError, match=re.escape(message)):
        check_inputs({name: value.shape for name, value in feeds.items()}, **attributes)


def test_offset_of_an_absent_input_is_rejected(make_session):
    message = "SelectiveScan: attribute z_offset is 8 but input z is absent"
    present = ("D", "delta_bias", "initial_state")
    session = make_session(selective_scan_model(shaped=False, layout=1, present=present,
                                                offsets={"z_offset": 8}), 1)
    feeds = make_inputs(layout=1, present=present)
    assert_rejected_as_the_contract_says(session, feeds, message)
