"""Blockwise 4-bit weights in the layout of ONNX Runtime's ``com.microsoft.MatMulNBits``.

``MatMulNBits`` computes ``A @ B`` with ``B`` (K, N) stored column by column in blocks of
``block_size`` rows along K: each block has its own scale and zero point, and every
value is a 4-bit code q with ``w = (q - zero_point) * scale``. This module owns that
layout (packing and its float64 inverse, :func:`dequantize`, the reference the tests
compare ONNX Runtime against); :mod:`mamba_export.export.quantize` decides which
MatMul nodes get it.

Layout (N output columns, K inputs, ``blocks = ceil(K / block_size)``):
    packed       uint8 (N, blocks, block_size / 2): two codes a byte, the first in the low nibble
    scales       (N, blocks) in the weight's float dtype
    zero_points  uint8 (N, ceil(blocks / 2)): two 4-bit zero points a byte, low nibble first

Quantisation is asymmetric (min/max, with 0 always representable so zero weights and the
padding past K stay exact): 16 codes over each block's own range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mamba_export.options import DEFAULT_BLOCK_SIZE, QUANT_BLOCK_SIZES

# ONNX Runtime's contrib op that consumes this layout.
OP_TYPE = "MatMulNBits"

BITS = 4
LEVELS = 2**BITS - 1  # the largest code


@dataclass(frozen=True)
class PackedWeight:
    """A (K, N) weight in MatMulNBits form."""

    packed: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray
    k: int
    n: int
    block_size: int

    @property
    def nbytes(self) -> int:
        return self.packed.nbytes + self.scales.nbytes + self.zero_points.nbytes


def _pair_nibbles(codes: np.ndarray) -> np.ndarray:
    """(..., 2m) codes 0..15 -> (..., m) bytes, the even-indexed code in the low nibble."""
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def _split_nibbles(packed: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_pair_nibbles`: (..., m) bytes -> (..., 2m) codes."""
    codes = np.empty(packed.shape[:-1] + (2 * packed.shape[-1],), np.uint8)
    codes[..., 0::2] = packed & 0x0F
    codes[..., 1::2] = packed >> 4
    return codes


def quantize(weight: np.ndarray, block_size: int = DEFAULT_BLOCK_SIZE) -> PackedWeight:
    """weight: (K, N) float32 or float16 -> its 4-bit blocks (scales in the weight's dtype)."""
    if block_size not in QUANT_BLOCK_SIZES:
        raise ValueError(f"block_size must be one of {QUANT_BLOCK_SIZES}, got {block_size}")
    k, n = weight.shape
    blocks = -(-k // block_size)
    columns = np.zeros((n, blocks * block_size), np.float32)  # padded with exact zeros
    columns[:, :k] = weight.T.astype(np.float32)
    columns = columns.reshape(n, blocks, block_size)
    low = np.minimum(columns.min(axis=-1), 0.0)
    high = np.maximum(columns.max(axis=-1), 0.0)
    scales = ((high - low) / LEVELS).astype(weight.dtype)  # rounded to the dtype the kernel reads
    safe = np.where(scales == 0, 1.0, scales.astype(np.float32))
    zero_points = np.clip(np.rint(-low / safe), 0, LEVELS).astype(np.uint8)
    codes = np.clip(np.rint(columns / safe[..., None]) + zero_points[..., None], 0, LEVELS).astype(np.uint8)
    if blocks % 2:
        zero_points = np.concatenate([zero_points, np.zeros((n, 1), np.uint8)], axis=1)
    return PackedWeight(_pair_nibbles(codes), scales, _pair_nibbles(zero_points), k, n, block_size)


def dequantize(weight: PackedWeight) -> np.ndarray:
    """The (K, N) float64 weight MatMulNBits multiplies by: the reference for the kernel."""
    codes = _split_nibbles(weight.packed).astype(np.float64)  # (N, blocks, block_size)
    blocks = codes.shape[1]
    zero_points = _split_nibbles(weight.zero_points)[:, :blocks].astype(np.float64)
    scales = weight.scales.astype(np.float64)
    values = (codes - zero_points[..., None]) * scales[..., None]
    return values.reshape(weight.n, -1)[:, :weight.k].T
