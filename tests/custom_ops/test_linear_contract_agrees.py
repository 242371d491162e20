"""custom_ops/include/mamba_export_ops/linear.h must say what mamba_export/ops/linear.py says.

The header is parsed as text (no compiler needed): op type, version, the input and output
names in ABI order, the number of required inputs and the rows the CUDA kernel keeps for its
own matrix-vector kernels. The dtypes the kernel validation (linear/validate.cc) accepts are
checked against the contract too.
"""

from __future__ import annotations

import math

import pytest
from test_contract_agrees import (
    CUSTOM_OPS,
    assert_input_names_and_order,
    assert_op_type_version_and_shared_domain,
    constant,
    enum_entries,
    string_array,
)

from mamba_export.ops import linear as contract

HEADER = CUSTOM_OPS / "include" / "mamba_export_ops" / "linear.h"
VALIDATE = CUSTOM_OPS / "linear" / "validate.cc"
CUDA_KERNEL = CUSTOM_OPS / "linear" / "cuda.cu"
TILE_KERNEL = CUSTOM_OPS / "linear" / "cuda_tile.cu"


@pytest.fixture(scope="module")
def header() -> str:
    return HEADER.read_text()


def test_op_type_version_and_shared_domain(header):
    assert_op_type_version_and_shared_domain(header, "Linear", contract)


def test_input_names_and_order(header):
    assert_input_names_and_order(header, "Linear", "LinearInput", contract)


def test_every_input_is_required(header):
    assert int(constant(header, "kLinearNumRequiredInputs")) == len(contract.INPUT_NAMES)
    assert contract.REQUIRED_INPUTS == contract.INPUT_NAMES


def test_output_names_and_order(header):
    assert tuple(string_array(header, "kLinearOutputNames")) == contract.OUTPUT_NAMES
    entries = enum_entries(header, "LinearOutput")
    assert [name.removeprefix("kLinearOutput").lower() for name, _ in entries[:-1]] == list(contract.OUTPUT_NAMES)
    assert [index for _, index in entries] == list(range(len(contract.OUTPUT_NAMES) + 1))


def test_vector_rows(header):
    assert int(constant(header, "kLinearVectorRows")) == contract.VECTOR_ROWS
    factors = constant(header, "kLinearVectorMaxWeightBytes").split("*")
    assert math.prod(int(f.strip().removesuffix("LL")) for f in factors) == contract.VECTOR_MAX_WEIGHT_BYTES
    rule = "rows >= 1 && rows <= kLinearVectorRows && (rows == 1 || weight_bytes <= kLinearVectorMaxWeightBytes)"
    assert f"return {rule};" in header
    # The CUDA launcher instantiates one kernel per row count up to it.
    source = CUDA_KERNEL.read_text()
    for rows in range(1, contract.VECTOR_ROWS + 1):
        assert f"case {rows}: return LaunchKernel(LinearVectorKernel<T, {rows}, E>" in source
    assert f"kLinearVectorRows == {contract.VECTOR_ROWS}" in source


def test_tile_rows(header):
    assert int(constant(header, "kLinearTileRows")) == contract.TILE_ROWS
    assert int(constant(header, "kLinearTileInnerMultiple")) == contract.TILE_INNER_MULTIPLE
    rule = "half_precision && rows >= 1 && rows <= kLinearTileRows && inner % kLinearTileInnerMultiple == 0"
    assert f"return {rule};" in header
    assert contract.TILE_DTYPES == tuple(d for d in contract.IO_DTYPES if d != "float32")
    # The kernel instantiates one or two row tiles of 16.
    source = TILE_KERNEL.read_text()
    assert f"kLinearTileRows == {contract.TILE_ROWS}" in source and contract.TILE_ROWS == 32
    assert "LinearUsesTileKernel(params.rows, params.inner, params.dtype != LinearDType::kFloat32)" in source


def test_validation_accepts_the_contracts_dtypes():
    assert tuple(string_array(VALIDATE.read_text(), "kIoDtypes")) == contract.IO_DTYPES
    assert all(spec.dtype == "T" for spec in contract.INPUTS + contract.OUTPUTS)


@pytest.mark.parametrize(("rows", "weight_bytes", "expected"), [
    (0, 10, False), (1, 10, True), (1, 10**9, True), (4, 8 * 1024 * 1024, True), (4, 8 * 1024 * 1024 + 1, False),
    (2, 4_718_592, True), (5, 10, False)])
def test_which_calls_take_the_vector_kernel(rows, weight_bytes, expected):
    assert contract.uses_vector_kernel(rows, weight_bytes) is expected


@pytest.mark.parametrize(("rows", "inner", "outer", "dtype", "expected"), [
    (1, 768, 50280, "float16", "vector"), (4, 768, 3072, "bfloat16", "vector"),
    (5, 768, 3072, "float16", "tile"), (32, 48, 1536, "bfloat16", "tile"), (2, 2048, 8192, "float16", "tile"),
    (5, 768, 3072, "float32", "cublas"), (2, 2048, 8192, "float32", "cublas"), (33, 768, 3072, "float16", "cublas"),
    (8, 13, 17, "float16", "cublas"), (0, 8, 8, "float16", "cublas")])
def test_which_path_takes_a_call(rows, inner, outer, dtype, expected):
    assert contract.cuda_path(rows, inner, outer, dtype) == expected
