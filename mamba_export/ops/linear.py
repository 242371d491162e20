"""The Linear operator contract: the one source of truth.

A product with a constant weight, ``y = x W^T``, as ``torch.nn.Linear`` without a bias
(every projection of a Mamba block: in_proj, x_proj, dt_proj, out_proj). ONNX's MatMul
computes the same; the op exists for decode on a GPU. There a step's products are
matrix-vector products, and cuBLAS's kernels for them are bound by latency, not by
the weight's bytes: 96 of them take 64 % of a mamba-130m step on an H200
(``results/gpu/2026-12-01-gemm/``). The op's CUDA kernel takes rows of x up to
``TILE_ROWS`` with kernels of our own (matrix-vector kernels up to ``VECTOR_ROWS``,
a tensor-core kernel past them), launched as dependents of the kernel before them
(they start while it finishes and read the weight, a constant, before waiting for
it), and hands more rows (prefill) to cuBLAS. The exporter, the runtime, the tests, the docs
(``docs/linear_op.md``) and the C++ header ``custom_ops/include/mamba_export_ops/linear.h``
follow this module; ``tests/custom_ops/test_linear_contract_agrees.py`` fails if the
header drifts.

Semantics, with K the inner size, N the output size and every product and sum in
float32 whatever T (one rounding to T at the end; the order of the sums is the
kernel's own):

    y[..., n] = T(sum_k float(x[..., k]) * float(weight[n, k]))

The weight is (N, K), the layout of ``torch.nn.Linear.weight``: each output reads one
contiguous row of it. It should be an initializer: a weight computed by another node
is still correct, but the CUDA kernel then waits before reading it. K = 0 gives zeros;
no rows give an empty y.
"""

from __future__ import annotations

from dataclasses import dataclass

from mamba_export.ops.contract_base import DOMAIN, ContractChecks, TensorSpec
from mamba_export.ops.contract_base import format_shape as _fmt

__all__ = ["DOMAIN", "OP_TYPE", "OP_VERSION", "INPUTS", "OUTPUTS", "ATTRIBUTES", "VECTOR_ROWS",
           "VECTOR_MAX_WEIGHT_BYTES", "TILE_ROWS", "TILE_INNER_MULTIPLE", "TILE_DTYPES", "check_inputs",
           "uses_vector_kernel", "uses_tile_kernel", "cuda_path"]

OP_TYPE = "Linear"
OP_VERSION = 1

# The dtypes x, weight and y may have (all three share one, T).
IO_DTYPES = ("float32", "float16", "bfloat16")

# Rows of x (the product of every dimension but the last) that the CUDA kernel computes with
# matrix-vector kernels of its own; more rows go to cuBLAS. Decode at batch 1 to 4. Past one row,
# only weights of at most VECTOR_MAX_WEIGHT_BYTES take them: on the H200 four rows of mamba-130m's
# products (weights up to 4.7 MB) ran 19 % faster than cuBLAS, four of mamba-1.4b's (17 and 34 MB)
# 38 % slower (results/gpu/2026-12-01-decode-products/).
VECTOR_ROWS = 4
VECTOR_MAX_WEIGHT_BYTES = 8 * 1024 * 1024

# Calls the matrix-vector kernel leaves, of up to TILE_ROWS rows (decode at batch 5 to 32, and
# batch 2 to 4 past VECTOR_MAX_WEIGHT_BYTES), in a dtype of TILE_DTYPES and with K a multiple of
# TILE_INNER_MULTIPLE, take a tensor-core kernel of our own, also launched as a dependent (where x
# and the weight are 16-byte aligned, as ONNX Runtime allocates them); the rest go to cuBLAS.
TILE_ROWS = 32
TILE_INNER_MULTIPLE = 8
TILE_DTYPES = ("float16", "bfloat16")

# This order is the ABI: append, never reorder.
INPUTS = (
    TensorSpec("x", "(..., K)", "T", True, "the activations"),
    TensorSpec("weight", "(N, K)", "T", True, "the weight, as torch.nn.Linear stores it (an initializer)"),
)
OUTPUTS = (
    TensorSpec("y", "(..., N)", "T", True, "x times the weight transposed, rounded once to T"),
)
INPUT_NAMES = tuple(spec.name for spec in INPUTS)
OUTPUT_NAMES = tuple(spec.name for spec in OUTPUTS)
REQUIRED_INPUTS = tuple(spec.name for spec in INPUTS if spec.required)
ATTRIBUTES: dict = {}


@dataclass(frozen=True)
class LinearDims:
    """The sizes resolved from a valid set of inputs."""

    rows: int   # the product of every dimension of x but the last
    inner: int  # K
    outer: int  # N


_checks = ContractChecks(OP_TYPE, INPUTS)
_fail = _checks.fail


def check_inputs(shapes: dict, dtypes: dict | None = None) -> LinearDims:
    """Check input shapes (and dtypes, if given) against the contract.

    ``shapes`` maps input names to shapes, ``dtypes`` the same names to dtype names
    ("float32", "float16", ...). Returns the resolved dimensions or raises
    :class:`InputShapeError` naming the input, the expected and the actual value.
    """
    _checks.check_names(shapes)
    x = tuple(int(s) for s in shapes["x"])
    weight = tuple(int(s) for s in shapes["weight"])
    if len(x) < 1:
        _fail(f"x has rank 0 {_fmt(x)}, expected rank >= 1 (..., K)")
    if len(weight) != 2:
        _fail(f"weight is {_fmt(weight)}, expected rank 2 (N, K)")
    if weight[1] != x[-1]:
        _fail(f"weight is {_fmt(weight)}, expected (N, {x[-1]}) to match x's last dimension (K)")
    if dtypes is not None:
        _checks.check_dtypes(dtypes, "x", IO_DTYPES, {"T": "to match x"})
    rows = 1
    for size in x[:-1]:
        rows *= size
    return LinearDims(rows, weight[1], weight[0])


def uses_vector_kernel(rows: int, weight_bytes: int) -> bool:
    """Whether the CUDA kernel computes a call with its own matrix-vector kernel (else cuBLAS)."""
    return 1 <= rows <= VECTOR_ROWS and (rows == 1 or weight_bytes <= VECTOR_MAX_WEIGHT_BYTES)


def uses_tile_kernel(rows: int, inner: int, dtype: str) -> bool:
    """Whether a call the vector kernel leaves takes the tensor-core kernel (else cuBLAS)."""
    return dtype in TILE_DTYPES and 1 <= rows <= TILE_ROWS and inner % TILE_INNER_MULTIPLE == 0


def cuda_path(rows: int, inner: int, outer: int, dtype: str) -> str:
    """Which of the CUDA kernel's three paths takes a call: "vector", "tile" or "cublas"."""
    weight_bytes = inner * outer * (4 if dtype == "float32" else 2)
    if uses_vector_kernel(rows, weight_bytes):
        return "vector"
    return "tile" if uses_tile_kernel(rows, inner, dtype) else "cublas"


def output_shape(x_shape, weight_shape) -> tuple[int, ...]:
    """y's shape: x's with its last dimension replaced by N."""
    return tuple(int(s) for s in x_shape[:-1]) + (int(weight_shape[0]),)
