"""The LastArgMax operator contract: the one source of truth.

The greedy choice of a decode step in one node: the index of the largest logit of the
last position of the head output. It replaces the three ONNX nodes the exporter writes
for ``next_tokens`` otherwise (``Gather`` of the last position, ``Cast`` to float32,
``ArgMax``): the kernel reads the last position where it lies and widens each value as it
compares it, so nothing is copied. The exporter (``mamba_export/export/next_tokens.py``),
the tests, the docs (``docs/last_argmax_op.md``) and the C++ header
``custom_ops/include/mamba_export_ops/last_argmax.h`` follow this module;
``tests/custom_ops/test_last_argmax_contract_agrees.py`` fails if the header drifts.

Semantics, with logits (B, L, V) and every comparison in float32 (half-precision values
widen exactly, so this is the comparison of the values themselves):

    tokens[b, 0] = argmax_v logits[b, L - 1, v]

NumPy's ``argmax`` rules: among equal maxima the first (lowest) index; a row holding a NaN
gives the index of its first NaN. -0.0 and +0.0 are equal. L = 0 or V = 0 is an error (the
argmax of nothing); B = 0 gives an empty (0, 1) output.
"""

from __future__ import annotations

from dataclasses import dataclass

from mamba_export.ops.contract_base import DOMAIN, ContractChecks, TensorSpec
from mamba_export.ops.contract_base import format_shape as _fmt

__all__ = ["DOMAIN", "OP_TYPE", "OP_VERSION", "INPUTS", "OUTPUTS", "ATTRIBUTES", "check_inputs"]

OP_TYPE = "LastArgMax"
OP_VERSION = 1

# The dtypes logits may have (T); the comparison is in float32 whatever T.
IO_DTYPES = ("float32", "float16", "bfloat16")

# This order is the ABI: append, never reorder.
INPUTS = (
    TensorSpec("logits", "(B, L, V)", "T", True, "the head output: the logits of L >= 1 positions"),
)
OUTPUTS = (
    TensorSpec("tokens", "(B, 1)", "int64", True,
               "the index of the largest logit of the last position (first on ties, first NaN)"),
)
INPUT_NAMES = tuple(spec.name for spec in INPUTS)
OUTPUT_NAMES = tuple(spec.name for spec in OUTPUTS)
REQUIRED_INPUTS = tuple(spec.name for spec in INPUTS if spec.required)
# No attributes: the axis (the last), the position (the last) and the tie rule are fixed.
ATTRIBUTES: dict = {}


@dataclass(frozen=True)
class ArgMaxDims:
    """The sizes resolved from a valid input."""

    batch: int      # B
    positions: int  # L
    vocab: int      # V


_checks = ContractChecks(OP_TYPE, INPUTS)
_fail = _checks.fail


def check_inputs(shapes: dict, dtypes: dict | None = None) -> ArgMaxDims:
    """Check the input shape (and dtype, if given) against the contract.

    ``shapes`` maps input names to shapes; ``dtypes`` maps the same names to dtype names
    ("float32", "float16", ...). Returns the resolved dimensions or raises
    :class:`InputShapeError` naming the input, the expected and the actual value.
    """
    _checks.check_names(shapes)
    logits = tuple(int(s) for s in shapes["logits"])
    if len(logits) != 3:
        _fail(f"logits has rank {len(logits)} {_fmt(logits)}, expected rank 3 (B, L, V)")
    batch, positions, vocab = logits
    if positions == 0:
        _fail(f"logits is {_fmt(logits)}, expected L >= 1 positions (the argmax of the last position needs one)")
    if vocab == 0:
        _fail(f"logits is {_fmt(logits)}, expected V >= 1 (the argmax of no values is undefined)")
    if dtypes is not None:
        _checks.check_dtypes(dtypes, "logits", IO_DTYPES, {"T": "to match logits"})
    return ArgMaxDims(batch, positions, vocab)
