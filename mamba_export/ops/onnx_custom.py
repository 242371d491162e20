"""The ONNX form of the torch ops: one node of the contract's domain per call.

``torch.onnx.export(dynamo=True)`` needs to be told how to write
``torch.ops.mamba_export.selective_scan`` and ``torch.ops.mamba_export.causal_conv1d``;
:func:`custom_translation_table` gives it translations that each emit a single
node of the contract's ``DOMAIN``/``OP_TYPE`` at its ``OP_VERSION``. Each node is
described to onnxscript with an ``onnx.defs.OpSchema`` built from its contract
module, so the input order, the optional inputs (absent ones become empty input
names) and the attributes come from ``mamba_export.ops.selective_scan`` and
``mamba_export.ops.causal_conv`` and are never spelled twice.
"""

from __future__ import annotations

import functools

import onnx
from onnxscript import values

from mamba_export.ops import causal_conv as conv_contract
from mamba_export.ops import linear as linear_contract
from mamba_export.ops import residual_norm as norm_contract
from mamba_export.ops import selective_scan as contract

_ONNX_TYPE_NAMES = {"float32": "tensor(float)", "float16": "tensor(float16)", "bfloat16": "tensor(bfloat16)",
                    "int64": "tensor(int64)"}


def _type_string(dtype: str) -> str:
    return "T" if dtype == "T" else _ONNX_TYPE_NAMES[dtype]


def _formal(spec: contract.TensorSpec) -> onnx.defs.OpSchema.FormalParameter:
    option = (onnx.defs.OpSchema.FormalParameterOption.Single if spec.required
              else onnx.defs.OpSchema.FormalParameterOption.Optional)
    return onnx.defs.OpSchema.FormalParameter(spec.name, _type_string(spec.dtype), spec.doc,
                                              param_option=option)


def _schema(module, summary: str) -> onnx.defs.OpSchema:
    io_types = [_ONNX_TYPE_NAMES[name] for name in module.IO_DTYPES]
    attributes = [onnx.defs.OpSchema.Attribute(name, onnx.helper.make_attribute(name, default), "")
                  for name, (_, default) in module.ATTRIBUTES.items()]
    return onnx.defs.OpSchema(
        module.OP_TYPE, module.DOMAIN, module.OP_VERSION, summary,
        inputs=[_formal(spec) for spec in module.INPUTS],
        outputs=[_formal(spec) for spec in module.OUTPUTS],
        type_constraints=[("T", io_types, "the I/O dtype")],
        attributes=attributes,
    )


@functools.lru_cache(maxsize=1)
def op_schema() -> onnx.defs.OpSchema:
    """The SelectiveScan contract as an ONNX operator schema (not registered globally)."""
    return _schema(contract, "Selective state-space scan (see docs/selective_scan_op.md).")


@functools.lru_cache(maxsize=1)
def causal_conv_schema() -> onnx.defs.OpSchema:
    """The CausalConv1d contract as an ONNX operator schema (not registered globally)."""
    return _schema(conv_contract, "Causal depthwise convolution with state and mask (see docs/causal_conv_op.md).")


def _node_op(op_contract, schema: onnx.defs.OpSchema) -> values.Op:
    """The onnxscript op that writes one node of ``op_contract``'s operator."""
    return values.Op(values.Opset(op_contract.DOMAIN, op_contract.OP_VERSION), op_contract.OP_TYPE, schema)


@functools.lru_cache(maxsize=1)
def _selective_scan_op() -> values.Op:
    return _node_op(contract, op_schema())


def selective_scan_to_onnx(u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None,
                           delta_softplus: bool = False, layout: int = 0, b_offset: int = contract.WHOLE,
                           c_offset: int = contract.WHOLE, z_offset: int = contract.WHOLE, delta_weight=None,
                           delta_offset: int = contract.WHOLE):
    """Translation of ``torch.ops.mamba_export.selective_scan.default`` into one custom node."""
    op = _selective_scan_op()
    return op(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_weight, delta_softplus=int(delta_softplus),
              layout=int(layout), b_offset=int(b_offset), c_offset=int(c_offset), z_offset=int(z_offset),
              delta_offset=int(delta_offset))


@functools.lru_cache(maxsize=1)
def _causal_conv_op() -> values.Op:
    return _node_op(conv_contract, causal_conv_schema())


def causal_conv1d_to_onnx(x, weight, bias=None, conv_state=None, mask=None, activation: int = 0,
                          x_offset: int = conv_contract.WHOLE):
    """Translation of ``torch.ops.mamba_export.causal_conv1d.default`` into one custom node."""
    op = _causal_conv_op()
    return op(x, weight, bias, conv_state, mask, activation=int(activation), x_offset=int(x_offset))


@functools.lru_cache(maxsize=1)
def residual_norm_schema() -> onnx.defs.OpSchema:
    """The ResidualRMSNorm contract as an ONNX operator schema (not registered globally)."""
    return _schema(norm_contract, "Residual sum and RMS norm (see docs/residual_norm_op.md).")


@functools.lru_cache(maxsize=1)
def _residual_norm_op() -> values.Op:
    return _node_op(norm_contract, residual_norm_schema())


def residual_rms_norm_to_onnx(x, weight, residual=None, epsilon: float = 1e-6):
    """Translation of ``torch.ops.mamba_export.residual_rms_norm.default`` into one custom node."""
    op = _residual_norm_op()
    return op(x, weight, residual, epsilon=float(epsilon))


@functools.lru_cache(maxsize=1)
def linear_schema() -> onnx.defs.OpSchema:
    """The Linear contract as an ONNX operator schema (not registered globally). No torch op
    translates to it: the node comes from the rewrite of a saved graph (export/linear_products.py)."""
    return _schema(linear_contract, "Product with a constant weight stored (N, K), y = x W^T "
                                    "(see docs/linear_op.md).")


def custom_translation_table() -> dict:
    """The ``custom_translation_table`` argument of ``torch.onnx.export`` for our ops."""
    import torch

    import mamba_export.ops.torch_op  # noqa: F401  (registers the ops)

    return {torch.ops.mamba_export.selective_scan.default: selective_scan_to_onnx,
            torch.ops.mamba_export.causal_conv1d.default: causal_conv1d_to_onnx,
            torch.ops.mamba_export.residual_rms_norm.default: residual_rms_norm_to_onnx}
