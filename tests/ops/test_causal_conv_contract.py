"""The CausalConv1d contract module: resolved sizes, and errors that name the input and both values."""

from __future__ import annotations

import pytest

from mamba_export.errors import InputShapeError
from mamba_export.ops import causal_conv
from mamba_export.ops.causal_conv import ConvDims, check_activation, check_inputs

GOOD = {"x": (2, 9, 6), "weight": (6, 4), "bias": (6,), "conv_state": (2, 6, 3), "mask": (2, 9)}


def test_resolves_the_sizes():
    assert check_inputs(GOOD) == ConvDims(batch=2, length=9, channels=6, width=4)


def test_optional_inputs_may_be_missing_or_none():
    assert check_inputs({"x": (1, 0, 3), "weight": (3, 1), "bias": None}).width == 1


def test_width_1_has_a_state_of_0_columns():
    assert check_inputs({"x": (2, 5, 3), "weight": (3, 1), "conv_state": (2, 3, 0)}).width == 1


@pytest.mark.parametrize(("name", "shape", "message"), [
    ("x", (9, 6), r"x has rank 2 \(9, 6\), expected rank 3 \(B, L, C\)"),
    ("weight", (5, 4), r"weight is \(5, 4\), expected \(C, K\) = \(6, K\) with K >= 1 to match x"),
    ("weight", (6, 0), r"weight is \(6, 0\), expected \(C, K\) = \(6, K\) with K >= 1"),
    ("weight", (6,), r"weight is \(6,\), expected \(C, K\)"),
    ("bias", (7,), r"bias is \(7,\), expected \(6,\) to match x \(C\)"),
    ("conv_state", (2, 6, 4), r"conv_state is \(2, 6, 4\), expected \(2, 6, 3\) to match x \(B, C\) and weight"),
    ("conv_state", (1, 6, 3), r"conv_state is \(1, 6, 3\), expected \(2, 6, 3\)"),
    ("mask", (2, 8), r"mask is \(2, 8\), expected \(2, 9\) to match x \(B, L\)"),
    ("mask", (2, 9, 1), r"mask is \(2, 9, 1\), expected \(2, 9\)"),
])
def test_bad_shape_names_input_expected_and_actual(name, shape, message):
    with pytest.raises(InputShapeError, match="^CausalConv1d: " + message):
        check_inputs(GOOD | {name: shape})


def test_missing_required_and_unknown_inputs():
    with pytest.raises(InputShapeError, match="required input weight is missing"):
        check_inputs({"x": (1, 2, 3)})
    with pytest.raises(InputShapeError, match=r"unknown inputs \['state'\]"):
        check_inputs(GOOD | {"state": (2, 6, 3)})


@pytest.mark.parametrize(("dtypes", "message"), [
    ({"x": "float64"}, "x is float64, expected one of float32, float16, bfloat16"),
    ({"conv_state": "float16"}, "conv_state is float16, expected float32 to match x"),
    ({"weight": "float16"}, "weight is float16, expected float32 .the taps and the bias are always float32"),
    ({"mask": "int32"}, "mask is int32, expected int64"),
])
def test_bad_dtype_is_named(dtypes, message):
    base = {"x": "float32", "weight": "float32", "bias": "float32", "conv_state": "float32", "mask": "int64"}
    with pytest.raises(InputShapeError, match=message):
        check_inputs(GOOD, base | dtypes)


def test_half_io_keeps_float32_taps():
    dtypes = {"x": "bfloat16", "weight": "float32", "bias": "float32", "conv_state": "bfloat16", "mask": "int64"}
    assert check_inputs(GOOD, dtypes).channels == 6


@pytest.mark.parametrize("value", [2, -1, True, 1.0])
def test_activation_outside_the_table_is_rejected(value):
    with pytest.raises(InputShapeError, match="attribute activation is .*, expected one of 0 .none., 1 .silu."):
        check_activation(value)


def test_contract_tables_are_consistent():
    assert [spec.name for spec in causal_conv.INPUTS] == ["x", "weight", "bias", "conv_state", "mask"]
    assert causal_conv.OUTPUT_NAMES == ("y", "new_conv_state")
    assert causal_conv.REQUIRED_INPUTS == ("x", "weight")
    assert causal_conv.ATTRIBUTES == {"activation": ("int", 0), "x_offset": ("int", causal_conv.WHOLE)}
    dtypes = {spec.name: spec.dtype for spec in causal_conv.INPUTS}
    assert {n for n, d in dtypes.items() if d == "float32"} == set(causal_conv.FLOAT32_INPUTS)
    assert {n for n, d in dtypes.items() if d == "int64"} == set(causal_conv.INT64_INPUTS)
    assert causal_conv.DOMAIN == "mamba_export"
