"""docs/linear_op.md must state the contract of mamba_export/ops/linear.py: its tables of inputs and
outputs, its header values, error messages that check_inputs() really raises, and the words of the
export record (export/linear_products.py) it quotes."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from mamba_export.errors import InputShapeError
from mamba_export.export import linear_products
from mamba_export.ops import linear as contract
from tests.support.op_doc import DOCS, assert_header_values, assert_inputs_table, assert_outputs_table

DOC = DOCS / "linear_op.md"


def test_header_values():
    assert_header_values(DOC, contract)


def test_inputs_table():
    assert_inputs_table(DOC, contract)


def test_outputs_table():
    assert_outputs_table(DOC, contract)


def test_no_attributes():
    assert contract.ATTRIBUTES == {}
    assert "## Attributes\n\nNone.\n" in DOC.read_text()


def test_paths_are_the_contracts():
    text = " ".join(DOC.read_text().split())
    assert f"up to {contract.SMALL_WEIGHT_BYTES // 2**20} MiB, `SMALL_WEIGHT_BYTES`" in text
    tile_rows = f"up to {contract.TILE_WIDE_ROWS} rows (`TILE_WIDE_ROWS`), or up to {contract.TILE_ROWS} (`TILE_ROWS`)"
    assert tile_rows in text
    assert f"up to {contract.VECTOR_ROWS} rows (`VECTOR_ROWS`)" in text
    assert f"`K` a multiple of {contract.TILE_INNER_MULTIPLE}" in text
    # The table's rows, read back through the contract's own rule.
    small, large = (1536, 768), (2048, 8192)
    assert f"up to {contract.VECTOR_WEIGHT_BYTES // 2**20} MiB (`VECTOR_WEIGHT_BYTES`)" in text
    assert f"`N` up to {contract.TILE_SPLIT_COLUMNS}, `TILE_SPLIT_COLUMNS`" in text
    assert f"`K` at least {contract.TILE_DEEP_INNER}, `TILE_DEEP_INNER`" in text
    narrow_deep = (contract.TILE_DEEP_INNER, contract.TILE_SPLIT_COLUMNS)
    cases = {"one row of a weight of up to": (1, *small, "float16", "vector"),
             "unless the weight is narrow and deep": (1, *narrow_deep, "float16", "tile"),
             "up to 16 rows": (contract.TILE_WIDE_ROWS, *large, "bfloat16", "tile"),
             "or up to 32": (contract.TILE_ROWS, *small, "float16", "tile"),
             "float32": (contract.VECTOR_ROWS, *small, "float32", "vector"),
             "the rest": (contract.TILE_ROWS, *large, "float16", "cublas")}
    for words, (rows, inner, outer, dtype, path) in cases.items():
        assert words in text
        assert contract.cuda_path(rows, inner, outer, dtype) == path


SHAPES = {"x": (2, 8), "weight": (3, 8)}
MESSAGE_CASES = [
    ({"weight": (8, 3)}, None),
    ({"weight": (8,)}, None),
    ({"x": ()}, None),
    ({}, {"x": "float16", "weight": "float32"}),
]


@pytest.mark.parametrize(("edit", "dtypes"), MESSAGE_CASES)
def test_quoted_errors_are_the_ones_raised(edit, dtypes):
    with pytest.raises(InputShapeError) as caught:
        contract.check_inputs(SHAPES | edit, dtypes)
    assert f"`{caught.value}`" in DOC.read_text()


def test_quoted_record_words_are_the_passes():
    text = DOC.read_text()
    for words in (linear_products.WEIGHT_IS_LEFT, linear_products.AS_STORED, linear_products.TRANSPOSED_COPY,
                  linear_products.SHARED_TABLE):
        assert f"`{words}`" in text, words


def test_every_record_key_is_described():
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="proj")], "one",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [numpy_helper.from_array(np.ones((4, 3), np.float32), "W")])
    record = linear_products.rewrite_model(helper.make_model(graph))
    text = DOC.read_text().split("## Where the exporter uses it", 1)[1]
    keys = [key for key in record if key not in ("op", "op_version")] + list(record["rewritten"][0])
    assert [key for key in keys if f"`{key}`" not in text and key != "node"] == []
