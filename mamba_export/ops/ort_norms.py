"""RMS norms as ONNX Runtime's fused nodes, so each Mamba block's norm is one node.

A Mamba block normalises ``residual + mixer output`` with a weighted RMS norm. Traced
as plain torch ops that is an Add, a Pow, a ReduceMean, an Add, a Sqrt, a Reciprocal
and two Muls (plus Casts in half precision). ONNX Runtime has the whole thing as one
node on its CPU and CUDA providers:

* ``SimplifiedLayerNormalization`` (standard domain, ORT's own schema): the norm;
* ``SkipSimplifiedLayerNormalization`` (``com.microsoft``): the residual sum and the
  norm, returning both.

The two torch ops here stand for those nodes in the traced model and compute, when run
eagerly, the same math as transformers' ``MambaRMSNorm`` on the summed input: the mean
of squares and the scaling in float32, the weight applied in the input's dtype.
:func:`translation_table` makes ``torch.onnx.export`` write the ORT nodes. They are
only for graphs that run on ONNX Runtime (the custom backend); ORT has no bfloat16
CPU kernel for them, so callers hand them float32 or float16 tensors.
"""

from __future__ import annotations

import functools

import onnx
import torch
from onnxscript import values

from mamba_export.ops.ort_norm_nodes import MS_DOMAIN, NORM_OP, SKIP_NORM_OP

NORM_QUALNAME = "mamba_export::rms_norm"
SKIP_NORM_QUALNAME = "mamba_export::skip_rms_norm"


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


@torch.library.custom_op(NORM_QUALNAME, mutates_args=())
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x: (..., H); weight: (H,) in x's dtype. Returns the normed x in x's dtype."""
    return _rms(x, weight, eps)


@rms_norm.register_fake
def _rms_norm_fake(x, weight, eps):
    return x.new_empty(x.shape)


@torch.library.custom_op(SKIP_NORM_QUALNAME, mutates_args=())
def skip_rms_norm(x: torch.Tensor, skip: torch.Tensor, weight: torch.Tensor,
                  eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x, skip: (..., H) of one dtype; weight: (H,) in it. Returns (norm of x + skip, x + skip)."""
    total = x + skip
    return _rms(total, weight, eps), total


@skip_rms_norm.register_fake
def _skip_rms_norm_fake(x, skip, weight, eps):
    return x.new_empty(x.shape), x.new_empty(x.shape)


def _schema(name: str, domain: str, inputs: list[str], outputs: list[str]) -> onnx.defs.OpSchema:
    def formal(param):
        return onnx.defs.OpSchema.FormalParameter(param, "T", "")

    epsilon = onnx.defs.OpSchema.Attribute("epsilon", onnx.defs.OpSchema.AttrType.FLOAT, "")
    return onnx.defs.OpSchema(
        name, domain, 1, f"ONNX Runtime's {name}", inputs=[formal(p) for p in inputs],
        outputs=[formal(p) for p in outputs],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "")], attributes=[epsilon])


@functools.lru_cache(maxsize=1)
def _ops() -> tuple[values.Op, values.Op]:
    norm = values.Op(values.Opset("", 1), NORM_OP, _schema(NORM_OP, "", ["X", "scale"], ["Y"]))
    skip = values.Op(values.Opset(MS_DOMAIN, 1), SKIP_NORM_OP,
                     _schema(SKIP_NORM_OP, MS_DOMAIN, ["input", "skip", "gamma"],
                             ["output", "mean", "inv_std_var", "input_skip_bias_sum"]))
    return norm, skip


def rms_norm_to_onnx(x, weight, eps: float):
    norm, _ = _ops()
    return norm(x, weight, epsilon=float(eps))


def skip_rms_norm_to_onnx(x, skip, weight, eps: float):
    _, skip_norm = _ops()
    output, _, _, total = skip_norm(x, skip, weight, epsilon=float(eps))
    return output, total


def translation_table() -> dict:
    """Entries of ``torch.onnx.export``'s ``custom_translation_table`` for the two norms."""
    return {torch.ops.mamba_export.rms_norm.default: rms_norm_to_onnx,
            torch.ops.mamba_export.skip_rms_norm.default: skip_rms_norm_to_onnx}
