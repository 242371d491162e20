"""NumPy and ONNX Runtime spellings of the dtypes an export uses.

bfloat16 has no NumPy dtype of its own and ONNX Runtime's Python API cannot turn
a bfloat16 tensor into an array, so bfloat16 goes through ``ml_dtypes.bfloat16``
arrays and OrtValues built over their raw 16-bit buffers. Everything that moves
arrays in or out of a session goes through :func:`to_ort_value` so the three
export dtypes take one path.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
from onnx import TensorProto

from mamba_export.errors import ExportFolderError

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
EXPORT_DTYPES = {"fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16), "bf16": BFLOAT16}
ORT_TYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(bfloat16)": BFLOAT16,
    "tensor(double)": np.dtype(np.float64),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
}
ONNX_ELEMENT_TYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float16): TensorProto.FLOAT16,
    BFLOAT16: TensorProto.BFLOAT16,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
}


def export_dtype(name: str) -> np.dtype:
    """The NumPy dtype of an export dtype name ("fp32", "fp16", "bf16")."""
    if name not in EXPORT_DTYPES:
        raise ExportFolderError(f"export dtype {name!r} is unknown; "
                                f"expected one of {', '.join(EXPORT_DTYPES)}")
    return EXPORT_DTYPES[name]


def from_ort_type(type_string: str, what: str) -> np.dtype:
    """The NumPy dtype of an ONNX Runtime type string such as "tensor(float)"."""
    if type_string not in ORT_TYPES:
        raise ExportFolderError(f"{what} has type {type_string}, which the runtime does not handle")
    return ORT_TYPES[type_string]


def to_ort_value(array: np.ndarray, device: str = "cpu", device_id: int = 0):
    """An OrtValue over ``array`` (shared memory on the CPU, a copy on a device)."""
    import onnxruntime as ort

    array = np.ascontiguousarray(array)
    if array.dtype == BFLOAT16:
        if device != "cpu":
            value = ort.OrtValue.ortvalue_from_shape_and_type(array.shape, TensorProto.BFLOAT16,
                                                              device, device_id)
            value.update_inplace(array.view(np.uint16))
            return value
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(array.view(np.uint16), TensorProto.BFLOAT16)
    return ort.OrtValue.ortvalue_from_numpy(array, device, device_id)


def empty_ort_value(shape: tuple, dtype: np.dtype, device: str, device_id: int = 0):
    """An uninitialised OrtValue on ``device`` (the CUDA path's fixed buffers)."""
    import onnxruntime as ort

    return ort.OrtValue.ortvalue_from_shape_and_type(list(shape), ONNX_ELEMENT_TYPES[np.dtype(dtype)],
                                                     device, device_id)
