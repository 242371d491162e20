"""docs/causal_conv_op.md must state the contract of mamba_export/ops/causal_conv.py: its tables of inputs,
outputs and attributes, its header values, and error messages that check_inputs() really raises."""

from __future__ import annotations

import re

import pytest

from mamba_export.errors import InputShapeError
from mamba_export.ops import causal_conv as contract
from tests.support.op_doc import DOCS, assert_header_values, assert_inputs_table, assert_outputs_table, table

DOC = DOCS / "causal_conv_op.md"


def test_header_values():
    assert_header_values(DOC, contract)


def test_inputs_table():
    assert_inputs_table(DOC, contract)


def test_outputs_table():
    assert_outputs_table(DOC, contract)


def test_attribute_table():
    rows = table(DOC, "Attributes")
    assert {r[0]: (r[1].split()[0], int(r[2])) for r in rows} == contract.ATTRIBUTES
    assert all(f"{k}: {v}" in rows[0][3].lower() for k, v in contract.ACTIVATIONS.items())


# The tensors each documented message comes from, so the doc quotes what the code says.
MESSAGE_CASES = [
    ({"x": (2, 9, 6)}, None),
    ({"x": (9, 6), "weight": (6, 4)}, None),
    ({"x": (2, 9, 6), "weight": (5, 4)}, None),
    ({"x": (2, 9, 6), "weight": (6, 4), "bias": (7,)}, None),
    ({"x": (2, 9, 6), "weight": (6, 4), "conv_state": (2, 6, 4)}, None),
    ({"x": (2, 9, 6), "weight": (6, 4), "mask": (2, 8)}, None),
    ({"x": (2, 9, 6), "weight": (6, 4)}, {"x": "float64", "weight": "float32"}),
    ({"x": (2, 9, 6), "weight": (6, 4), "conv_state": (2, 6, 3)},
     {"x": "float32", "weight": "float32", "conv_state": "float16"}),
    ({"x": (2, 9, 6), "weight": (6, 4)}, {"x": "float32", "weight": "float16"}),
    ({"x": (2, 9, 6), "weight": (6, 4), "mask": (2, 9)}, {"x": "float32", "weight": "float32", "mask": "int32"}),
]


@pytest.mark.parametrize(("shapes", "dtypes"), MESSAGE_CASES)
def test_documented_messages_are_the_real_ones(shapes, dtypes):
    with pytest.raises(InputShapeError) as caught:
        contract.check_inputs(shapes, dtypes)
    documented = re.findall(r"`(CausalConv1d: [^`]*)`", DOC.read_text())
    assert str(caught.value) in documented


# The documented messages of x read at an offset (x_offset 3, C = 6 from the weight).
OFFSET_MESSAGE_CASES = [
    ({"x": (2, 9, 12), "weight": (6, 4)}, -2),
    ({"x": (9, 12), "weight": (6, 4)}, 3),
    ({"x": (2, 9, 12), "weight": (6,)}, 3),
    ({"x": (2, 9, 8), "weight": (6, 4)}, 3),
]


@pytest.mark.parametrize(("shapes", "x_offset"), OFFSET_MESSAGE_CASES)
def test_documented_offset_messages_are_the_real_ones(shapes, x_offset):
    with pytest.raises(InputShapeError) as caught:
        contract.check_inputs(shapes, x_offset=x_offset)
    documented = re.findall(r"`(CausalConv1d: [^`]*)`", DOC.read_text())
    assert str(caught.value) in documented
