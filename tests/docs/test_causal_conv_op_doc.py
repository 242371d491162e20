"""docs/causal_conv_op.md must state the contract of mamba_export/ops/causal_conv.py: its tables of inputs,
outputs and attributes, its header values, and error messages that check_inputs() really raises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mamba_export.errors import InputShapeError
from mamba_export.ops import causal_conv as contract

DOC = Path(__file__).resolve().parents[2] / "docs" / "causal_conv_op.md"


def table(section: str) -> list[list[str]]:
    """The rows of the first table under '## section' (up to the next heading), cells stripped of backticks."""
    text = DOC.read_text().split(f"## {section}\n", 1)[1].split("\n#", 1)[0]
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
    rows = table("Attributes")
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
