"""The Linear operator contract: the one source of truth.

A product with a constant weight, ``y = x W^T``, as ``torch.nn.Linear`` without a bias
(every projection of a Mamba block: in_proj, x_proj, dt_proj, out_proj). ONNX's MatMul
computes the same; the op exists for decode on a GPU. There a step's products are
matrix-vector products, and cuBLAS's kernels for them are bound by latency, not by
the weight's bytes: 96 of them take 64 % of a mamba-130m step on an H200
(``results/gpu/2026-12-01-gemm/``). The op's CUDA kernel takes rows of x up to
``TILE_ROWS`` with kernels of our own (a matrix-vector kernel, a tensor-core kernel:
``cuda_path``), launched as dependents of the kernel before them (they start while it
finishes and read the weight, a constant, before waiting for it), and hands more rows
(prefill) to cuBLAS. The exporter, the runtime, the tests, the docs
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
           "VECTOR_WEIGHT_BYTES", "TILE_SPLIT_COLUMNS", "TILE_DEEP_INNER", "SMALL_WEIGHT_BYTES", "TILE_ROWS",
           "TILE_WIDE_ROWS", "TILE_INNER_MULTIPLE", "TILE_DTYPES",
           "CUDA_PATHS", "ELEMENT_BYTES", "check_inputs", "cuda_path"]

OP_TYPE = "Linear"
OP_VERSION = 1

# The dtypes x, weight and y may have (all three share one, T), and the bytes of one value of each.
IO_DTYPES = ("float32", "float16", "bfloat16")
ELEMENT_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

# Which of the CUDA kernel's paths takes a call (cuda_path). Rows are the product of every dimension
# of x but the last (decode: the batch). Measured on the H200 with every product of a decode step
# taking one path (results/gpu/2026-12-01-tile/decode_products*.json; float16):
# - the matrix-vector kernel, for one row of a weight of at most VECTOR_WEIGHT_BYTES: mamba-130m's
#   products at batch 1 took 210 us a step against 237 for the tensor-core kernel and 372 for cuBLAS;
#   mamba-1.4b's out_proj (16 MiB) 328 against 418 (tensor-core), its in_proj (32 MiB) 518 against 437
#   (results/gpu/2026-12-01-split/, each product alone). Not for a narrow, deep weight (N at most
#   TILE_SPLIT_COLUMNS, K at least TILE_DEEP_INNER): its blocks of 8 columns are then few, each warp
#   walking a long row (mamba-1.4b's x_proj, N = 160 and K = 4,096: 20 blocks, 239 us a step), while the
#   tensor-core kernel splits K over a cluster of blocks there (139 us); mamba-130m's x_proj (N = 80,
#   K = 1,536) stays faster on the matrix-vector kernel (51 against 63 us);
# - the tensor-core kernel (float16 and bfloat16, K a multiple of TILE_INNER_MULTIPLE), for up to
#   TILE_WIDE_ROWS rows of any weight and up to TILE_ROWS rows of small ones: mamba-130m at batch 2
#   to 16 took 242 to 271 us against 372 to 377 (cuBLAS), at batch 32 321 against 384; mamba-1.4b's
#   (weights of 17 and 34 MB) at batch 1 and 4 1,231 and 1,316 us against 1,354 and 1,363 for cuBLAS
#   and 1,401 and 1,891 for the matrix-vector kernel, but at batch 32 1,885 against 1,461;
# - float32, or K not a multiple of 8: the matrix-vector kernel up to VECTOR_ROWS rows (past one row
#   only for small weights, where four rows of mamba-130m's products ran 19 % faster than cuBLAS and
#   four of mamba-1.4b's 38 % slower: results/gpu/2026-12-01-decode-products/);
# - cuBLAS for the rest (prefill, larger batches).
VECTOR_ROWS = 4
VECTOR_WEIGHT_BYTES = 16 * 1024 * 1024
TILE_SPLIT_COLUMNS = 512
TILE_DEEP_INNER = 4096
SMALL_WEIGHT_BYTES = 8 * 1024 * 1024
TILE_ROWS = 32
TILE_WIDE_ROWS = 16
TILE_INNER_MULTIPLE = 8
TILE_DTYPES = ("float16", "bfloat16")
CUDA_PATHS = ("vector", "tile", "cublas")  # the order of the header's LinearPath

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


def cuda_path(rows: int, inner: int, outer: int, dtype: str) -> str:
    """Which of the CUDA kernel's paths takes a call: "vector", "tile" or "cublas" (an unaligned
    x or weight sends a "tile" call to cuBLAS; ONNX Runtime's tensors are aligned)."""
    weight_bytes = inner * outer * ELEMENT_BYTES[dtype]
    small = weight_bytes <= SMALL_WEIGHT_BYTES
    if rows < 1:
        return "cublas"
    if dtype in TILE_DTYPES and inner % TILE_INNER_MULTIPLE == 0:
        narrow_deep = outer <= TILE_SPLIT_COLUMNS and inner >= TILE_DEEP_INNER
        if rows == 1 and weight_bytes <= VECTOR_WEIGHT_BYTES and not narrow_deep:
            return "vector"
        if rows <= TILE_WIDE_ROWS or (rows <= TILE_ROWS and small):
            return "tile"
        return "cublas"
    return "vector" if rows <= VECTOR_ROWS and (rows == 1 or small) else "cublas"


def output_shape(x_shape, weight_shape) -> tuple[int, ...]:
    """y's shape: x's with its last dimension replaced by N."""
    return tuple(int(s) for s in x_shape[:-1]) + (int(weight_shape[0]),)
