"""docs/last_argmax_op.md must state the contract of mamba_export/ops/last_argmax.py: its tables of
inputs and outputs, its header values, that it has no attributes, and error messages that the code
really raises."""

from __future__ import annotations

import pytest

from mamba_export.errors import InputShapeError
from mamba_export.ops import last_argmax as contract
from tests.support.op_doc import DOCS, assert_header_values, assert_inputs_table, assert_outputs_table

DOC = DOCS / "last_argmax_op.md"


def test_header_values():
    assert_header_values(DOC, contract)


def test_inputs_table():
    assert_inputs_table(DOC, contract)


def test_outputs_table():
    assert_outputs_table(DOC, contract)


def test_no_attributes():
    assert contract.ATTRIBUTES == {}
    assert "## Attributes\n\nNone" in DOC.read_text()


MESSAGE_CASES = [
    ((3, 9), None),
    ((2, 0, 9), None),
    ((2, 3, 0), None),
    ((2, 3, 9), {"logits": "float64"}),
]


@pytest.mark.parametrize(("shape", "dtypes"), MESSAGE_CASES)
def test_quoted_errors_are_the_ones_raised(shape, dtypes):
    with pytest.raises(InputShapeError) as caught:
        contract.check_inputs({"logits": shape}, dtypes)
    assert f"`{caught.value}`" in DOC.read_text()
