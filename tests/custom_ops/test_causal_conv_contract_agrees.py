"""custom_ops/include/mamba_export_ops/causal_conv.h must say what mamba_export/ops/causal_conv.py says.

The header is parsed as text (no compiler needed): op type, version, the input and
output names in ABI order, the number of leading required inputs, the attribute and
its values. The dtypes the kernel validation (causal_conv/validate.cc) and the ORT
registration (causal_conv/ort_kernel.cc) give each input are checked against the
contract too.
"""

from __future__ import annotations

import re

import pytest
from test_contract_agrees import (
    CUSTOM_OPS,
    assert_input_names_and_order,
    assert_op_type_version_and_shared_domain,
    constant,
    enum_entries,
    string_array,
)
from test_contract_agrees import HEADER as SCAN_HEADER

from mamba_export.ops import causal_conv as contract

HEADER = CUSTOM_OPS / "include" / "mamba_export_ops" / "causal_conv.h"
VALIDATE = CUSTOM_OPS / "causal_conv" / "validate.cc"
BINDING = CUSTOM_OPS / "causal_conv" / "ort_kernel.cc"


@pytest.fixture(scope="module")
def header() -> str:
    return HEADER.read_text()


def test_op_type_version_and_shared_domain(header):
    assert_op_type_version_and_shared_domain(header, "CausalConv", contract)


def test_input_names_and_order(header):
    assert_input_names_and_order(header, "Conv", "CausalConvInput", contract)


def test_required_inputs_come_first(header):
    required = int(constant(header, "kConvNumRequiredInputs"))
    assert contract.REQUIRED_INPUTS == contract.INPUT_NAMES[:required]


def test_output_names_and_order(header):
    assert tuple(string_array(header, "kConvOutputNames")) == contract.OUTPUT_NAMES
    entries = enum_entries(header, "CausalConvOutput")
    assert [name for name, _ in entries] == ["kConvOutputY", "kConvOutputNewConvState", "kConvNumOutputs"]
    assert [index for _, index in entries] == [0, 1, len(contract.OUTPUT_NAMES)]


def test_attribute_and_its_values(header):
    names = [constant(header, "kAttrActivation").strip('"'), constant(header, "kAttrXOffset").strip('"')]
    assert names == list(contract.ATTRIBUTES)
    assert contract.ATTRIBUTES["x_offset"] == ("int", contract.WHOLE)
    # The value that reads x whole is contract.h's, shared by every op of the library.
    assert int(constant(SCAN_HEADER.read_text(), "kWholeInput")) == contract.WHOLE
    values = {int(v): name.removeprefix("kActivation").lower()
              for name, v in enum_entries(header, "CausalConvActivation")}
    assert values == contract.ACTIVATIONS


def _fixed_dtype_cases(source: str, function: str) -> dict:
    """input name -> the dtype a switch in ``function`` gives it (absent: the I/O dtype)."""
    body = re.search(rf"{function}\([^)]*\)[^{{]*\{{(.*?)\n\}}", source, re.S).group(1)
    fixed, pending = {}, []
    for label, value in re.findall(r"case (kConvInput\w+):(?:\s*return ([^;]+);)?", body):
        pending.append(label)
        if value:
            for name in pending:
                fixed[name] = value.strip()
            pending = []
    return {name.removeprefix("kConvInput").lower(): value for name, value in fixed.items()}


def test_validation_and_registration_give_the_contracts_dtypes():
    validate, binding = VALIDATE.read_text(), BINDING.read_text()
    assert tuple(string_array(validate, "kIoDtypes")) == contract.IO_DTYPES
    expected = {spec.name.replace("_", "").lower(): spec.dtype for spec in contract.INPUTS if spec.dtype != "T"}
    assert {k: v.strip('"') for k, v in _fixed_dtype_cases(validate, "FixedDtype").items()} == expected
    onnx_names = {"ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT": "float32", "ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64": "int64"}
    registered = _fixed_dtype_cases(binding, "CausalConvOp::GetInputType")
    assert {k: onnx_names[v] for k, v in registered.items()} == expected
