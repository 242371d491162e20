"""custom_ops/include/mamba_export_ops/residual_norm.h must say what mamba_export/ops/residual_norm.py says.

The header is parsed as text (no compiler needed): op type, version, the input and
output names in ABI order, the number of leading required inputs, the attribute and its
default. The dtypes the kernel validation (residual_norm/validate.cc) and the ORT
registration (residual_norm/ort_kernel.cc) give each input and output are checked
against the contract too.
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

from mamba_export.ops import residual_norm as contract

HEADER = CUSTOM_OPS / "include" / "mamba_export_ops" / "residual_norm.h"
VALIDATE = CUSTOM_OPS / "residual_norm" / "validate.cc"
BINDING = CUSTOM_OPS / "residual_norm" / "ort_kernel.cc"
ONNX_NAMES = {"ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT": "float32"}


@pytest.fixture(scope="module")
def header() -> str:
    return HEADER.read_text()


def _camel(name: str) -> str:
    return name.replace("_", "").lower()


def test_op_type_version_and_shared_domain(header):
    assert_op_type_version_and_shared_domain(header, "ResidualNorm", contract)


def test_input_names_and_order(header):
    assert_input_names_and_order(header, "Norm", "ResidualNormInput", contract)


def test_required_inputs_come_first(header):
    required = int(constant(header, "kNormNumRequiredInputs"))
    assert contract.REQUIRED_INPUTS == contract.INPUT_NAMES[:required]


def test_output_names_and_order(header):
    assert tuple(string_array(header, "kNormOutputNames")) == contract.OUTPUT_NAMES
    entries = enum_entries(header, "ResidualNormOutput")
    assert [name.removeprefix("kNormOutput").lower() for name, _ in entries[:-1]] == [
        _camel(name) for name in contract.OUTPUT_NAMES]
    assert [index for _, index in entries] == list(range(len(contract.OUTPUT_NAMES) + 1))


def test_attribute_and_its_default(header):
    assert [constant(header, "kAttrEpsilon").strip('"')] == list(contract.ATTRIBUTES)
    assert float(constant(header, "kDefaultEpsilon").rstrip("f")) == contract.ATTRIBUTES["epsilon"][1]


def _switch_cases(source: str, function: str, prefix: str) -> dict:
    """name -> the value a switch in ``function`` returns for it (absent: the default, T)."""
    body = re.search(rf"{function}\([^)]*\)[^{{]*\{{(.*?)\n\}}", source, re.S).group(1)
    return {label.removeprefix(prefix).lower(): value.strip()
            for label, value in re.findall(rf"case ({prefix}\w+):\s*return ([^;]+);", body)}


def test_validation_and_registration_give_the_contracts_dtypes():
    validate, binding = VALIDATE.read_text(), BINDING.read_text()
    assert tuple(string_array(validate, "kIoDtypes")) == contract.IO_DTYPES
    expected = {_camel(spec.name): spec.dtype for spec in contract.INPUTS if spec.dtype != "T"}
    assert {k: v.strip('"') for k, v in _switch_cases(validate, "FixedDtype", "kNormInput").items()} == expected
    registered = _switch_cases(binding, "ResidualNormOp::GetInputType", "kNormInput")
    assert {k: ONNX_NAMES[v] for k, v in registered.items()} == expected
    # Outputs: residual_out is float32, y is T.
    assert "index == kNormOutputResidualOut ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : io_type_" in binding
    assert {spec.name: spec.dtype for spec in contract.OUTPUTS} == {"y": "T", "residual_out": "float32"}
