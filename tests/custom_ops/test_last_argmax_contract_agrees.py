"""custom_ops/include/mamba_export_ops/last_argmax.h must say what mamba_export/ops/last_argmax.py says.

The header is parsed as text (no compiler needed): op type, version, the input and output
names in ABI order, the number of leading required inputs, and that there are no attributes.
The dtypes the kernel validation (last_argmax/validate.cc) accepts and the ORT registration
(last_argmax/ort_kernel.cc) gives the output are checked against the contract too.
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

from mamba_export.ops import last_argmax as contract

HEADER = CUSTOM_OPS / "include" / "mamba_export_ops" / "last_argmax.h"
VALIDATE = CUSTOM_OPS / "last_argmax" / "validate.cc"
BINDING = CUSTOM_OPS / "last_argmax" / "ort_kernel.cc"


@pytest.fixture(scope="module")
def header() -> str:
    return HEADER.read_text()


def test_op_type_version_and_shared_domain(header):
    assert_op_type_version_and_shared_domain(header, "LastArgMax", contract)


def test_input_names_and_order(header):
    assert_input_names_and_order(header, "ArgMax", "LastArgMaxInput", contract)


def test_required_inputs_come_first(header):
    required = int(constant(header, "kArgMaxNumRequiredInputs"))
    assert contract.REQUIRED_INPUTS == contract.INPUT_NAMES[:required]


def test_output_names_and_order(header):
    assert tuple(string_array(header, "kArgMaxOutputNames")) == contract.OUTPUT_NAMES
    entries = enum_entries(header, "LastArgMaxOutput")
    assert [name.removeprefix("kArgMaxOutput").lower() for name, _ in entries[:-1]] == [
        name.replace("_", "").lower() for name in contract.OUTPUT_NAMES]
    assert [index for _, index in entries] == list(range(len(contract.OUTPUT_NAMES) + 1))


def test_no_attributes(header):
    assert contract.ATTRIBUTES == {}
    assert not re.search(r"\bkAttr\w+", header)


def test_validation_and_registration_give_the_contracts_dtypes():
    validate, binding = VALIDATE.read_text(), BINDING.read_text()
    assert tuple(string_array(validate, "kIoDtypes")) == contract.IO_DTYPES
    assert [spec.dtype for spec in contract.INPUTS] == ["T"]
    assert "LastArgMaxOp::GetInputType(size_t) const { return io_type_; }" in binding
    assert [spec.dtype for spec in contract.OUTPUTS] == ["int64"]
    assert ("LastArgMaxOp::GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64; }"
            in binding)


def test_the_registrations_cover_every_dtype_on_both_providers():
    for source, runner in (("register.cc", "RunArgMaxOnCpu"), ("register_cuda.cc", "RunArgMaxOnCuda")):
        text = (CUSTOM_OPS / source).read_text()
        registered = re.findall(rf"ONNX_TENSOR_ELEMENT_DATA_TYPE_(\w+), {runner}\}}", text)
        assert sorted(registered) == ["BFLOAT16", "FLOAT", "FLOAT16"], source
