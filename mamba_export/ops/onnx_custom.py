"""The ONNX form of the torch op: one ``SelectiveScan`` node of the contract's domain.

``torch.onnx.export(dynamo=True)`` needs to be told how to write
``torch.ops.mamba_export.selective_scan``; :func:`custom_translation_table` gives
it a translation that emits a single node of ``DOMAIN``/``OP_TYPE`` at
``OP_VERSION``. The node is described to onnxscript with an ``onnx.defs.OpSchema``
built from the contract, so the input order, the optional inputs (absent ones
become empty input names) and the attribute all come from
``mamba_export.ops.selective_scan`` and are never spelled twice.
"""

from __future__ import annotations

import functools

import onnx
from onnxscript import values

from mamba_export.ops import selective_scan as contract

_ONNX_TYPE_NAMES = {"float32": "tensor(float)", "float16": "tensor(float16)", "bfloat16": "tensor(bfloat16)"}


def _type_string(dtype: str) -> str:
    return "T" if dtype == "T" else "tensor(float)"


def _formal(spec: contract.TensorSpec) -> onnx.defs.OpSchema.FormalParameter:
    option = (onnx.defs.OpSchema.FormalParameterOption.Single if spec.required
              else onnx.defs.OpSchema.FormalParameterOption.Optional)
    return onnx.defs.OpSchema.FormalParameter(spec.name, _type_string(spec.dtype), spec.doc,
                                              param_option=option)


@functools.lru_cache(maxsize=1)
def op_schema() -> onnx.defs.OpSchema:
    """The contract as an ONNX operator schema (not registered globally)."""
    io_types = [_ONNX_TYPE_NAMES[name] for name in contract.IO_DTYPES]
    attributes = [onnx.defs.OpSchema.Attribute(name, onnx.helper.make_attribute(name, default), "")
                  for name, (_, default) in contract.ATTRIBUTES.items()]
    return onnx.defs.OpSchema(
        contract.OP_TYPE, contract.DOMAIN, contract.OP_VERSION,
        "Selective state-space scan (see docs/selective_scan_op.md).",
        inputs=[_formal(spec) for spec in contract.INPUTS],
        outputs=[_formal(spec) for spec in contract.OUTPUTS],
        type_constraints=[("T", io_types, "the I/O dtype")],
        attributes=attributes,
    )


@functools.lru_cache(maxsize=1)
def _selective_scan_op() -> values.Op:
    opset = values.Opset(contract.DOMAIN, contract.OP_VERSION)
    return values.Op(opset, contract.OP_TYPE, op_schema())


def selective_scan_to_onnx(u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None,
                           delta_softplus: bool = False, layout: int = 0):
    """Translation of ``torch.ops.mamba_export.selective_scan.default`` into one custom node."""
    op = _selective_scan_op()
    return op(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus=int(delta_softplus),
              layout=int(layout))


def custom_translation_table() -> dict:
    """The ``custom_translation_table`` argument of ``torch.onnx.export`` for our op."""
    import torch

    import mamba_export.ops.torch_op  # noqa: F401  (registers the op)

    return {torch.ops.mamba_export.selective_scan.default: selective_scan_to_onnx}
