"""Moving arrays of every export dtype in and out of ONNX Runtime sessions.

The spellings of each dtype (NumPy, ONNX, ONNX Runtime) come from
:mod:`mamba_export.dtypes`; this module turns them into the runtime's errors and
OrtValues. bfloat16 has no NumPy dtype of its own and ONNX Runtime's Python API cannot
turn a bfloat16 tensor into an array, so bfloat16 goes through ``ml_dtypes.bfloat16``
arrays and OrtValues built over their raw 16-bit buffers. Everything that moves arrays
in or out of a session goes through :func:`to_ort_value` so the three export dtypes take
one path.
"""

from __future__ import annotations

import numpy as np

from mamba_export import dtypes
from mamba_export.errors import ExportFolderError

BFLOAT16 = dtypes.BF16.numpy


def export_dtype(name: str) -> np.dtype:
    """The NumPy dtype of an export dtype name ("fp32", "fp16", "bf16")."""
    if name not in dtypes.EXPORT_DTYPES:
        raise ExportFolderError(f"export dtype {name!r} is unknown; "
                                f"expected one of {', '.join(dtypes.EXPORT_DTYPES)}")
    return dtypes.EXPORT_DTYPES[name].numpy


def from_ort_type(type_string: str, what: str) -> np.dtype:
    """The NumPy dtype of an ONNX Runtime type string such as "tensor(float)"."""
    element = dtypes.from_ort_type(type_string)
    if element is None:
        raise ExportFolderError(f"{what} has type {type_string}, which the runtime does not handle")
    return element.numpy


def onnx_element_type(dtype: np.dtype) -> int:
    """The ONNX element type (TensorProto number) of a NumPy dtype the runtime handles."""
    element = dtypes.from_numpy(np.dtype(dtype))
    if element is None:
        raise ExportFolderError(f"the runtime has no ONNX element type for NumPy dtype {np.dtype(dtype)}")
    return element.onnx_type


def to_ort_value(array: np.ndarray, device: str = "cpu", device_id: int = 0):
    """An OrtValue over ``array`` (shared memory on the CPU, a copy on a device)."""
    import onnxruntime as ort

    array = np.ascontiguousarray(array)
    if array.dtype == BFLOAT16:
        if device != "cpu":
            value = ort.OrtValue.ortvalue_from_shape_and_type(array.shape, dtypes.BF16.onnx_type,
                                                              device, device_id)
            value.update_inplace(array.view(np.uint16))
            return value
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(array.view(np.uint16), dtypes.BF16.onnx_type)
    return ort.OrtValue.ortvalue_from_numpy(array, device, device_id)


def empty_ort_value(shape: tuple, dtype: np.dtype, device: str, device_id: int = 0):
    """An uninitialised OrtValue on ``device`` (the CUDA path's fixed buffers)."""
    import onnxruntime as ort

    return ort.OrtValue.ortvalue_from_shape_and_type(list(shape), onnx_element_type(dtype),
                                                     device, device_id)
