"""The 4-bit block layout: packing round trips within half a step, and ONNX Runtime's
MatMulNBits multiplies by exactly the weight :func:`int4.dequantize` describes."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mamba_export.ops import int4


def weight(k: int, n: int, dtype=np.float32, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((k, n)) * 0.05).astype(dtype)


@pytest.mark.parametrize("k, n, block", [(16, 8, 32), (48, 24, 32), (200, 17, 64), (768, 40, 128), (1, 9, 32)])
def test_round_trip_within_half_a_step(k, n, block):
    w = weight(k, n)
    packed = int4.quantize(w, block)
    blocks = -(-k // block)
    assert packed.packed.shape == (n, blocks, block // 2) and packed.packed.dtype == np.uint8
    assert packed.scales.shape == (n, blocks) and packed.zero_points.shape == (n, -(-blocks // 2))
    step = np.repeat(packed.scales.astype(np.float64).T, block, axis=0)[:k]  # (K, N) per element
    error = np.abs(int4.dequantize(packed) - w)
    assert (error <= step / 2 + 1e-7).all(), f"worst {np.max(error / step):.3f} steps"
    assert error.max() > 0  # 4 bits cannot hold random floats exactly: the test sees rounding


def test_zeros_stay_exact_and_constant_blocks_do_not_divide_by_zero():
    w = weight(64, 4)
    w[:32, 0] = 0.0
    w[:, 1] = 0.0
    out = int4.dequantize(int4.quantize(w, 32))
    assert (out[:32, 0] == 0).all() and (out[:, 1] == 0).all()


def test_unknown_block_size_is_refused():
    with pytest.raises(ValueError, match="block_size"):
        int4.quantize(weight(64, 4), 48)


def matmul_nbits(packed: int4.PackedWeight, a: np.ndarray, accuracy_level: int = 0) -> np.ndarray:
    element = TensorProto.FLOAT if a.dtype == np.float32 else TensorProto.FLOAT16
    node = helper.make_node("MatMulNBits", ["A", "B", "scales", "zero_points"], ["Y"], domain="com.microsoft",
                            K=packed.k, N=packed.n, bits=4, block_size=packed.block_size,
                            accuracy_level=accuracy_level)
    graph = helper.make_graph(
        [node], "one_matmul", [helper.make_tensor_value_info("A", element, [None, None, packed.k])],
        [helper.make_tensor_value_info("Y", element, [None, None, packed.n])],
        [numpy_helper.from_array(packed.packed, "B"), numpy_helper.from_array(packed.scales, "scales"),
         numpy_helper.from_array(packed.zero_points, "zero_points")])
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"A": a})[0]


# float32 compute: the kernel's own summation rounding (K up to 768 terms, ~1e-6);
# float16 in and out: a few units of 2**-11.
KERNEL_TOLERANCE = {np.float32: 1e-5, np.float16: 4e-3}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("k, n, block", [(48, 1536 // 8, 32), (200, 17, 64), (768, 96, 128), (1, 32, 32)])
def test_onnxruntime_multiplies_by_the_dequantized_weight(k, n, block, dtype):
    packed = int4.quantize(weight(k, n, dtype), block)
    a = np.random.default_rng(1).standard_normal((2, 3, k)).astype(dtype)
    expected = a.astype(np.float64) @ int4.dequantize(packed)
    got = matmul_nbits(packed, a)
    error = np.abs(got - expected).max() / np.abs(expected).max()
    assert error <= KERNEL_TOLERANCE[dtype], f"relative error {error:.2e}"


def test_a_wrong_nibble_order_is_seen_by_the_kernel():
    """The layout test can fail: codes packed high nibble first give another product."""
    packed = int4.quantize(weight(64, 8), 32)
    swapped = int4.PackedWeight((packed.packed >> 4) | (packed.packed << 4), packed.scales, packed.zero_points,
                                packed.k, packed.n, packed.block_size)
    a = np.random.default_rng(2).standard_normal((1, 2, 64)).astype(np.float32)
    expected = a.astype(np.float64) @ int4.dequantize(packed)
    error = np.abs(matmul_nbits(swapped, a) - expected).max() / np.abs(expected).max()
    assert error > 0.1
