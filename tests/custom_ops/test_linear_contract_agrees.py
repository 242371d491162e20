"""custom_ops/include/mamba_export_ops/linear.h must say what mamba_export/ops/linear.py says.

The header is parsed as text: op type, version, the input and output names in ABI order, the
number of required inputs and the constants of the CUDA kernel's paths. Its rule for which path
takes a call (LinearPathFor) is compiled with a small driver (custom_ops/tests/linear_path_probe.cc)
and held to the contract's cuda_path over a grid of calls. The dtypes the kernel validation
(linear/validate.cc) accepts are checked against the contract too.
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
from tests.support.validate_probe import build_probe, run_lines

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


def test_path_constants(header):
    assert int(constant(header, "kLinearVectorRows")) == contract.VECTOR_ROWS
    def product(name):
        return math.prod(int(f.strip().removesuffix("LL")) for f in constant(header, name).split("*"))

    assert product("kLinearSmallWeightBytes") == contract.SMALL_WEIGHT_BYTES
    assert product("kLinearVectorWeightBytes") == contract.VECTOR_WEIGHT_BYTES
    assert product("kLinearTileSplitColumns") == contract.TILE_SPLIT_COLUMNS
    assert product("kLinearTileDeepInner") == contract.TILE_DEEP_INNER
    assert int(constant(header, "kLinearTileRows")) == contract.TILE_ROWS
    assert int(constant(header, "kLinearTileWideRows")) == contract.TILE_WIDE_ROWS
    assert int(constant(header, "kLinearTileInnerMultiple")) == contract.TILE_INNER_MULTIPLE
    assert contract.TILE_DTYPES == tuple(d for d in contract.IO_DTYPES if d != "float32")
    assert set(contract.ELEMENT_BYTES) == set(contract.IO_DTYPES)
    assert [name for name, _ in enum_entries(header, "LinearPath")] == [
        "kLinearPath" + path.capitalize() for path in contract.CUDA_PATHS]


def test_kernels_instantiate_the_rows_they_are_given(header):
    # The matrix-vector launcher: one kernel per row count up to VECTOR_ROWS.
    source = CUDA_KERNEL.read_text()
    for rows in range(1, contract.VECTOR_ROWS + 1):
        assert f"case {rows}: return LaunchKernel(LinearVectorKernel<T, {rows}, E>" in source
    assert f"kLinearVectorRows == {contract.VECTOR_ROWS}" in source
    # The tensor-core kernel: one or two row tiles of 16.
    assert f"kLinearTileRows == {contract.TILE_ROWS}" in TILE_KERNEL.read_text() and contract.TILE_ROWS == 32


@pytest.fixture(scope="module")
def path_probe(tmp_path_factory):
    return build_probe(tmp_path_factory.mktemp("probe"), "linear", "linear_path_probe.cc")


def test_header_picks_the_contracts_path(path_probe):
    """LinearPathFor gives cuda_path's answer over a grid of rows, K, N and dtypes."""
    cases = [(rows, inner, outer, dtype)
             for rows in (0, 1, 2, 3, 4, 5, 15, 16, 17, 31, 32, 33, 64, 2048)
             for inner in (1, 13, 48, 768, 2048, 4088, 4096, 5120)
             for outer in (5, 80, 160, 512, 513, 1536, 2048, 3072, 8192, 50280)
             for dtype in contract.IO_DTYPES]
    lines = [f"{rows} {inner} {outer} {inner * outer * contract.ELEMENT_BYTES[dtype]} "
             f"{int(dtype in contract.TILE_DTYPES)}"
             for rows, inner, outer, dtype in cases]
    got = run_lines(path_probe, lines)
    expected = [str(contract.CUDA_PATHS.index(contract.cuda_path(*case))) for case in cases]
    assert len({e for e in expected}) == 3  # the grid reaches every path
    mismatches = [(case, g, e) for case, g, e in zip(cases, got, expected, strict=True) if g != e]
    assert not mismatches, mismatches[:5]


def test_validation_accepts_the_contracts_dtypes():
    assert tuple(string_array(VALIDATE.read_text(), "kIoDtypes")) == contract.IO_DTYPES
    assert all(spec.dtype == "T" for spec in contract.INPUTS + contract.OUTPUTS)


@pytest.mark.parametrize(("rows", "inner", "outer", "dtype", "expected"), [
    (1, 768, 3072, "float16", "vector"), (1, 768, 50280, "float16", "tile"), (1, 768, 50280, "float32", "vector"),
    (4, 768, 3072, "bfloat16", "tile"), (4, 1536, 768, "float32", "vector"), (4, 13, 17, "float16", "vector"),
    (5, 768, 3072, "float16", "tile"), (32, 48, 1536, "bfloat16", "tile"), (2, 2048, 8192, "float16", "tile"),
    (16, 2048, 8192, "float16", "tile"), (17, 2048, 8192, "float16", "cublas"), (32, 4096, 2048, "float16", "cublas"),
    (5, 768, 3072, "float32", "cublas"), (2, 2048, 8192, "float32", "cublas"), (33, 768, 3072, "float16", "cublas"),
    (8, 13, 17, "float16", "cublas"), (0, 8, 8, "float16", "cublas"),
    # one row: narrow and deep goes to the tensor-core kernel (which splits K); 16 MiB stays on the vector
    (1, 4096, 160, "float16", "tile"), (1, 4096, 160, "bfloat16", "tile"), (1, 1536, 80, "float16", "vector"),
    (1, 4088, 160, "float16", "vector"), (1, 4096, 513, "float16", "vector"), (1, 4096, 160, "float32", "vector"),
    (1, 4096, 2048, "float16", "vector"), (1, 4096, 2049, "float16", "tile"), (1, 2048, 8192, "float16", "tile")])
def test_which_path_takes_a_call(rows, inner, outer, dtype, expected):
    assert contract.cuda_path(rows, inner, outer, dtype) == expected
