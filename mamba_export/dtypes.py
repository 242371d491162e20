"""The export dtypes and every spelling of them, owned once.

An export dtype has a short name (the CLI's ``--dtype``, ``ExportOptions.dtype`` and
``export_info.json``'s ``dtype``), a long name (the torch attribute, the NumPy or
``ml_dtypes`` name, and the dtype ``export_info.json`` gives each input and output), an
ONNX element type and an ONNX Runtime type string. The options, the exporter, the
runtime and the parity suite read them here; nobody keeps a table of their own.

Whatever the export dtype, the SSM state (and the residual where the config keeps
it in float32) stays float32, as in transformers: :data:`STATE_DTYPE`.

The graphs also carry token ids and, in tests, float64 tensors; those element types
are here too (:data:`ELEMENT_TYPES`), so the runtime maps every type string from one
table. torch, NumPy and ``ml_dtypes`` are imported only when a spelling in them is asked
for, so importing this module (and ``mamba_export``) stays light.
"""

from __future__ import annotations

from dataclasses import dataclass

from mamba_export.errors import MambaExportError


@dataclass(frozen=True)
class ElementType:
    """One element type in every spelling the project uses.

    name: the export dtype name ("fp16"), or the long name for types that are not export dtypes.
    long_name: "float16": torch attribute, NumPy / ml_dtypes name, export_info.json I/O dtype.
    onnx_type: TensorProto element type (the ONNX spec's numbers: FLOAT = 1, FLOAT16 = 10, ...).
    ort_type: ONNX Runtime's type string, "tensor(float16)".
    cpu_kernels: ONNX Runtime's CPU provider runs a graph in this type (no bfloat16 kernels).
    """

    name: str
    long_name: str
    onnx_type: int
    ort_type: str
    cpu_kernels: bool = True

    @property
    def torch(self):
        import torch

        return getattr(torch, self.long_name)

    @property
    def numpy(self):
        import numpy as np

        if self.long_name == "bfloat16":
            # NumPy has no bfloat16; ml_dtypes' is the one ONNX Runtime's raw buffers match.
            import ml_dtypes

            return np.dtype(ml_dtypes.bfloat16)
        return np.dtype(self.long_name)


FP32 = ElementType("fp32", "float32", 1, "tensor(float)")
FP16 = ElementType("fp16", "float16", 10, "tensor(float16)")
BF16 = ElementType("bf16", "bfloat16", 16, "tensor(bfloat16)", cpu_kernels=False)

# The dtypes an export can be made in, by short name; the first is the default.
EXPORT_DTYPES = {dtype.name: dtype for dtype in (FP32, FP16, BF16)}
DEFAULT_DTYPE = FP32.name

# The SSM state is float32 in every export (the recurrence drifts in half precision).
STATE_DTYPE = FP32

# Every element type a graph of ours carries, by long name.
ELEMENT_TYPES = {dtype.long_name: dtype for dtype in (
    FP32, FP16, BF16,
    ElementType("float64", "float64", 11, "tensor(double)"),
    ElementType("int64", "int64", 7, "tensor(int64)"),
    ElementType("int32", "int32", 6, "tensor(int32)"),
)}


def export_dtype(name: str) -> ElementType:
    """The export dtype called ``name`` ("fp32", "fp16", "bf16")."""
    if name not in EXPORT_DTYPES:
        raise MambaExportError(f"export dtype {name!r} is unknown; expected one of {', '.join(EXPORT_DTYPES)}")
    return EXPORT_DTYPES[name]


def from_ort_type(type_string: str) -> ElementType | None:
    """The element type of an ONNX Runtime type string such as "tensor(float)", or None."""
    return next((dtype for dtype in ELEMENT_TYPES.values() if dtype.ort_type == type_string), None)


def from_numpy(dtype) -> ElementType | None:
    """The element type of a NumPy dtype (ml_dtypes.bfloat16 included), or None."""
    return next((element for element in ELEMENT_TYPES.values() if element.numpy == dtype), None)
