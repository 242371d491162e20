"""The one dtype table agrees with ONNX, ONNX Runtime, torch and NumPy, and every reader uses it."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mamba_export import dtypes
from mamba_export.errors import MambaExportError


@pytest.mark.parametrize("element", list(dtypes.ELEMENT_TYPES.values()), ids=lambda e: e.long_name)
def test_each_spelling_names_the_same_type(element):
    assert element.onnx_type == getattr(onnx.TensorProto, onnx.TensorProto.DataType.Name(element.onnx_type))
    assert onnx.helper.tensor_dtype_to_np_dtype(element.onnx_type) == element.numpy
    assert element.torch.itemsize == element.numpy.itemsize
    array = np.zeros((2, 3), element.numpy)
    if element.numpy == dtypes.BF16.numpy:
        value = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(array.view(np.uint16), element.onnx_type)
    else:
        value = ort.OrtValue.ortvalue_from_numpy(array)
    assert value.data_type() == element.ort_type


def test_lookups_round_trip_and_refuse_unknown_names():
    for element in dtypes.ELEMENT_TYPES.values():
        assert dtypes.from_ort_type(element.ort_type) is element
        assert dtypes.from_numpy(element.numpy) is element
    assert dtypes.from_ort_type("tensor(string)") is None
    assert dtypes.export_dtype("fp16").torch is torch.float16
    with pytest.raises(MambaExportError, match="fp8"):
        dtypes.export_dtype("fp8")


def test_state_stays_float32_and_only_bfloat16_lacks_cpu_kernels():
    assert dtypes.STATE_DTYPE.long_name == "float32"
    assert [name for name, d in dtypes.EXPORT_DTYPES.items() if not d.cpu_kernels] == ["bf16"]


def test_options_runtime_and_parity_read_the_table():
    from mamba_export.options import DTYPES, ExportOptions
    from mamba_export.parity.torch_runs import TORCH_DTYPES
    from mamba_export.runtime.dtypes import export_dtype

    assert DTYPES == tuple(dtypes.EXPORT_DTYPES)
    for name, element in dtypes.EXPORT_DTYPES.items():
        assert ExportOptions(dtype=name).torch_dtype_name == element.long_name
        assert TORCH_DTYPES[name] is element.torch
        assert export_dtype(name) == element.numpy
