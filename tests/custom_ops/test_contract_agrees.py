"""custom_ops/include/mamba_export_ops/contract.h must say what the Python contract says.

The header is parsed as text (no compiler needed): domain, op type, version, the
input and output names in ABI order, the number of leading required inputs, the
attribute name and the softplus threshold. The I/O dtypes the kernel validation
accepts (validate.cc) are checked against the contract too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mamba_export.ops import selective_scan as contract

CUSTOM_OPS = Path(__file__).resolve().parents[2] / "custom_ops"
HEADER = CUSTOM_OPS / "include" / "mamba_export_ops" / "contract.h"
VALIDATE = CUSTOM_OPS / "selective_scan" / "validate.cc"


@pytest.fixture(scope="module")
def header() -> str:
    return HEADER.read_text()


def constant(text: str, name: str) -> str:
    match = re.search(rf"\b{name}\s*=\s*([^;]+);", text)
    assert match, f"{name} not found"
    return match.group(1).strip()


def string_array(text: str, name: str) -> list[str]:
    match = re.search(rf"\b{name}\[[^\]]*\]\s*=\s*\{{([^}}]*)\}}", text)
    assert match, f"{name} not found"
    return re.findall(r'"([^"]*)"', match.group(1))


def enum_entries(text: str, enum: str) -> list[tuple[str, int]]:
    match = re.search(rf"enum {enum}\s*:\s*int\s*\{{([^}}]*)\}}", text)
    assert match, f"enum {enum} not found"
    return [(name, int(value)) for name, value in re.findall(r"(k\w+)\s*=\s*(\d+)", match.group(1))]


def assert_op_type_version_and_shared_domain(header: str, prefix: str, op) -> None:
    """A further op's header: k<prefix>OpType and k<prefix>Version as its contract module op says; kDomain comes
    from contract.h, shared with SelectiveScan."""
    assert constant(header, f"k{prefix}OpType") == f'"{op.OP_TYPE}"'
    assert int(constant(header, f"k{prefix}Version")) == op.OP_VERSION
    assert '#include "mamba_export_ops/contract.h"' in header  # kDomain has one owner
    assert op.DOMAIN == contract.DOMAIN


def assert_input_names_and_order(header: str, short: str, enum: str, op) -> None:
    """k<short>InputNames and the enum <enum> (k<short>Input<Name>..., k<short>NumInputs) follow op's contract."""
    assert tuple(string_array(header, f"k{short}InputNames")) == op.INPUT_NAMES
    entries = enum_entries(header, enum)
    assert entries[-1] == (f"k{short}NumInputs", len(op.INPUT_NAMES))
    for (name, index), expected in zip(entries[:-1], op.INPUT_NAMES, strict=True):
        assert index == op.INPUT_NAMES.index(expected)
        assert name.removeprefix(f"k{short}Input").lower() == expected.replace("_", "").lower()


def test_domain_op_type_and_version(header):
    assert constant(header, "kDomain") == f'"{contract.DOMAIN}"'
    assert constant(header, "kSelectiveScanOpType") == f'"{contract.OP_TYPE}"'
    assert int(constant(header, "kSelectiveScanVersion")) == contract.OP_VERSION


def test_softplus_threshold(header):
    assert float(constant(header, "kSoftplusThreshold").rstrip("f")) == contract.SOFTPLUS_THRESHOLD


def test_input_names_and_order(header):
    assert tuple(string_array(header, "kInputNames")) == contract.INPUT_NAMES
    entries = enum_entries(header, "SelectiveScanInput")
    assert entries[-1] == ("kNumInputs", len(contract.INPUT_NAMES))
    for (name, index), expected in zip(entries[:-1], contract.INPUT_NAMES, strict=True):
        assert index == contract.INPUT_NAMES.index(expected)
        assert name.removeprefix("kInput").lower() == expected.replace("_", "").lower()


def test_required_inputs_come_first(header):
    required = int(constant(header, "kNumRequiredInputs"))
    assert contract.REQUIRED_INPUTS == contract.INPUT_NAMES[:required]


def test_output_names_and_order(header):
    assert tuple(string_array(header, "kOutputNames")) == contract.OUTPUT_NAMES
    entries = enum_entries(header, "SelectiveScanOutput")
    assert [name for name, _ in entries] == ["kOutputY", "kOutputLastState", "kNumOutputs"]
    assert [index for _, index in entries] == [0, 1, len(contract.OUTPUT_NAMES)]


def test_attribute_names(header):
    names = [constant(header, name).strip('"')
             for name in ("kAttrDeltaSoftplus", "kAttrLayout", "kAttrBOffset", "kAttrCOffset", "kAttrZOffset",
                          "kAttrDeltaOffset")]
    assert names == list(contract.ATTRIBUTES)
    assert contract.ATTRIBUTES["delta_softplus"] == ("int", 0)
    assert contract.ATTRIBUTES["layout"] == ("int", contract.LAYOUT_CHANNELS_FIRST)


def test_offset_attributes(header):
    """Each offset attribute names its input, and its default reads the input whole."""
    assert int(constant(header, "kWholeInput")) == contract.WHOLE
    for name, attribute in contract.OFFSET_ATTRIBUTES.items():
        assert contract.ATTRIBUTES[attribute] == ("int", contract.WHOLE)
        assert constant(header, f"kAttr{name.upper()}Offset") == f'"{attribute}"'
    # The validation pairs each attribute with its input in the contract's order.
    pairs = re.findall(r"\{kInput(\w+), kAttr(\w)Offset, offsets\.\w\}", VALIDATE.read_text())
    assert [(i.lower(), a.lower()) for i, a in pairs] == [(n.lower(), n.lower()) for n in contract.OFFSET_ATTRIBUTES]
    # delta_offset goes with delta_weight and reads delta at an offset only when it is given.
    assert contract.ATTRIBUTES[contract.DELTA_OFFSET_ATTRIBUTE] == ("int", contract.WHOLE)
    assert constant(header, "kAttrDeltaOffset") == f'"{contract.DELTA_OFFSET_ATTRIBUTE}"'


def test_layout_values(header):
    entries = enum_entries(header, "SelectiveScanLayout")
    assert entries == [("kLayoutChannelsFirst", contract.LAYOUT_CHANNELS_FIRST),
                       ("kLayoutChannelsLast", contract.LAYOUT_CHANNELS_LAST)]
    assert tuple(index for _, index in entries) == contract.LAYOUTS


def test_validation_accepts_the_contracts_dtypes():
    source = VALIDATE.read_text()
    assert tuple(string_array(source, "kIoDtypes")) == contract.IO_DTYPES
    body = re.search(r"bool IsIoInput\(int index\) \{(.*?)\n\}", source, re.S).group(1)
    io_inputs = {name.removeprefix("kInput").lower() for name in re.findall(r"kInput\w+", body)}
    typed = {spec.name.replace("_", "").lower() for spec in contract.INPUTS if spec.dtype == "T"}
    assert io_inputs == typed
    assert set(contract.FLOAT32_INPUTS) == {spec.name for spec in contract.INPUTS if spec.dtype == "float32"}
