"""The ResidualRMSNorm operator contract: the one source of truth.

A Mamba block's pre-norm with the residual stream in one node: the sum of the
residual stream and the previous block's output, then a weighted RMS norm of it.
The residual stream is float32 (``residual_in_fp32``) while the block computes in
its own dtype T, so the node takes and returns both dtypes and a half-precision
layer needs no Cast around its norm. The exporter, the runtime, the tests, the docs
(``docs/residual_norm_op.md``) and the C++ header
``custom_ops/include/mamba_export_ops/residual_norm.h`` follow this module;
``tests/custom_ops/test_residual_norm_contract_agrees.py`` fails if the header drifts.

Semantics, per row (every index of x but the last), with H the hidden size and every
sum and product in float32 whatever T:

    s[h]            = float(x[h]) + residual[h]      (float(x[h]) when residual is absent)
    inv             = 1 / sqrt(sum_h s[h]^2 / H + epsilon)
    y[h]            = T(float(weight[h]) * (s[h] * inv))      (one rounding, at the end)
    residual_out[h] = s[h]                           (float32)

This is the math of the graph the exporter wrote before the op existed (ONNX
Runtime's skip norm in float32 between two Casts): float(x) and float(weight) are
exact, so the outputs are the same. transformers' ``MambaRMSNorm`` rounds s * inv to
T before the product with the weight and rounds the product again; one rounding is
never further from the float64 value. H = 0 gives empty outputs; rows are independent.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from mamba_export.ops.contract_base import DOMAIN, ContractChecks, TensorSpec
from mamba_export.ops.contract_base import format_shape as _fmt

__all__ = ["DOMAIN", "OP_TYPE", "OP_VERSION", "INPUTS", "OUTPUTS", "ATTRIBUTES", "check_inputs"]

OP_TYPE = "ResidualRMSNorm"
OP_VERSION = 1

# The dtypes x, weight and y may have (all three share one, T).
IO_DTYPES = ("float32", "float16", "bfloat16")
# The residual stream is float32 whatever T.
FLOAT32_INPUTS = ("residual",)

# This order is the ABI: append, never reorder.
INPUTS = (
    TensorSpec("x", "(..., H)", "T", True, "the block's input: the previous block's output, or the embeddings"),
    TensorSpec("weight", "(H,)", "T", True, "the norm's weight"),
    TensorSpec("residual", "(..., H)", "float32", False, "the residual stream before x is added (0 if absent)"),
)
OUTPUTS = (
    TensorSpec("y", "(..., H)", "T", True, "the normed sum, rounded once to T"),
    TensorSpec("residual_out", "(..., H)", "float32", True, "the sum x + residual, the next residual stream"),
)
INPUT_NAMES = tuple(spec.name for spec in INPUTS)
OUTPUT_NAMES = tuple(spec.name for spec in OUTPUTS)
REQUIRED_INPUTS = tuple(spec.name for spec in INPUTS if spec.required)
# Attribute name -> (ONNX type, default). transformers' MambaRMSNorm default.
ATTRIBUTES = {"epsilon": ("float", 1e-6)}


@dataclass(frozen=True)
class NormDims:
    """The sizes resolved from a valid set of inputs."""

    rows: int    # the product of every dimension of x but the last
    hidden: int  # H


_checks = ContractChecks(OP_TYPE, INPUTS)
_fail = _checks.fail
_expect_shape = _checks.expect_shape


def check_epsilon(epsilon) -> float:
    """The epsilon attribute as a float, or an InputShapeError: it must be finite and >= 0."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not 0.0 <= float(epsilon) < float("inf"):
        _fail(f"attribute epsilon is {epsilon!r}, expected a finite float >= 0")
    return float(epsilon)


def check_inputs(shapes: dict, dtypes: dict | None = None) -> NormDims:
    """Check input shapes (and dtypes, if given) against the contract.

    ``shapes`` maps input names to shapes; residual may be missing or None.
    ``dtypes`` maps the same names to dtype names ("float32", "float16", ...).
    Returns the resolved dimensions or raises :class:`InputShapeError` naming the
    input, the expected and the actual value.
    """
    _checks.check_names(shapes)
    x = tuple(int(s) for s in shapes["x"])
    if len(x) < 1:
        _fail(f"x has rank 0 {_fmt(x)}, expected rank >= 1 (..., H)")
    hidden = x[-1]
    _expect_shape("weight", shapes["weight"], (hidden,), "to match x (H)")
    if shapes.get("residual") is not None:
        _expect_shape("residual", shapes["residual"], x, "to match x")
    if dtypes is not None:
        _checks.check_dtypes({k: v for k, v in dtypes.items() if shapes.get(k) is not None}, "x", IO_DTYPES,
                             {"T": "to match x", "float32": "(the residual stream is always float32)"})
    rows = 1
    for size in x[:-1]:
        rows *= size
    return NormDims(rows, hidden)
