"""bfloat16 and the other export dtypes through OrtValues."""

from __future__ import annotations

import numpy as np
import pytest

from mamba_export.errors import ExportFolderError
from mamba_export.runtime.dtypes import BFLOAT16, empty_ort_value, export_dtype, from_ort_type, to_ort_value


def test_export_dtypes():
    assert export_dtype("fp32") == np.float32 and export_dtype("fp16") == np.float16
    assert export_dtype("bf16") == BFLOAT16
    with pytest.raises(ExportFolderError, match="fp8"):
        export_dtype("fp8")


def test_ort_type_strings():
    assert from_ort_type("tensor(bfloat16)", "x") == BFLOAT16
    assert from_ort_type("tensor(int64)", "x") == np.int64
    with pytest.raises(ExportFolderError, match="tensor\\(string\\)"):
        from_ort_type("tensor(string)", "x")


def test_bfloat16_ort_value_shares_the_buffer():
    array = np.array([[1.5, -2.25]], BFLOAT16)
    value = to_ort_value(array)
    assert value.data_type() == "tensor(bfloat16)" and value.shape() == [1, 2]
    assert value.data_ptr() == array.ctypes.data


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64])
def test_plain_ort_values(dtype):
    array = np.arange(6, dtype=dtype).reshape(2, 3)
    np.testing.assert_array_equal(to_ort_value(array).numpy(), array)
    assert empty_ort_value((2, 3), np.dtype(dtype), "cpu").shape() == [2, 3]
