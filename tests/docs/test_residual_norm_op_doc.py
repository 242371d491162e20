"""docs/residual_norm_op.md must state the contract of mamba_export/ops/residual_norm.py: its tables of
inputs, outputs and attributes, its header values, and error messages that the code really raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from mamba_export.errors import InputShapeError
from mamba_export.ops import residual_norm as contract

DOC = Path(__file__).resolve().parents[2] / "docs" / "residual_norm_op.md"


def table(section: str) -> list[list[str]]:
    """The rows of the first table under '## section', cells stripped of backticks."""
    text = DOC.read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in text.splitlines() if line.startswith("|")][2:]
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows]


def test_header_values():
    text = DOC.read_text()
    assert f"| Domain | `{contract.DOMAIN}` |" in text
    assert f"| Op type | `{contract.OP_TYPE}` |" in text
    assert f"| Version | {contract.OP_VERSION} " in text


def test_inputs_table():
    rows = table("Inputs")
    assert [(int(r[0]), r[1], r[2], r[3], r[4] == "yes", r[5]) for r in rows] == [
        (i, s.name, s.shape, s.dtype, s.required, s.doc) for i, s in enumerate(contract.INPUTS)]


def test_outputs_table():
    rows = table("Outputs")
    assert [(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows] == [
        (i, s.name, s.shape, s.dtype, s.doc) for i, s in enumerate(contract.OUTPUTS)]


def test_attribute_table():
    rows = table("Attribute")
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
