"""docs/residual_norm_op.md must state the contract of mamba_export/ops/residual_norm.py: its tables of
inputs, outputs and attributes, its header values, and error messages that the code really raises."""

from __future__ import annotations

import pytest

from mamba_export.errors import InputShapeError
from mamba_export.ops import residual_norm as contract
from tests.support.op_doc import DOCS, assert_header_values, assert_inputs_table, assert_outputs_table, table

DOC = DOCS / "residual_norm_op.md"


def test_header_values():
    assert_header_values(DOC, contract)


def test_inputs_table():
    assert_inputs_table(DOC, contract)


def test_outputs_table():
    assert_outputs_table(DOC, contract)


def test_attribute_table():
    rows = table(DOC, "Attribute")
    assert {r[0]: (r[1], float(r[2])) for r in rows} == contract.ATTRIBUTES


SHAPES = {"x": (2, 3, 16), "weight": (16,), "residual": (2, 3, 16)}
MESSAGE_CASES = [
    ({"weight": (15,)}, None),
    ({"residual": (2, 3, 15)}, None),
    ({"x": (), "weight": (1,), "residual": None}, None),
    ({}, {"x": "float16", "weight": "float16", "residual": "float16"}),
]


@pytest.mark.parametrize(("edit", "dtypes"), MESSAGE_CASES)
def test_quoted_errors_are_the_ones_raised(edit, dtypes):
    with pytest.raises(InputShapeError) as caught:
        contract.check_inputs(SHAPES | edit, dtypes)
    assert f"`{caught.value}`" in DOC.read_text()


def test_quoted_epsilon_error_is_the_one_raised():
    with pytest.raises(InputShapeError) as caught:
        contract.check_epsilon(-1)
    assert f"`{caught.value}`" in DOC.read_text()
