"""The fused-norm torch ops and their ONNX Runtime nodes against transformers' RMS norm.

Tolerances (relative error max|out - ref| / max|ref| against float64): float32 1e-6
(a handful of float32 roundings over 64 channels); float16 2e-3 (the output rounded to
float16 costs up to 2^-11 = 4.9e-4, and ORT applies the weight before that rounding,
transformers after it).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from mamba_export.ops import ort_norms
from mamba_export.ops.ort_norm_nodes import MS_DOMAIN, NORM_OP, NUMPY_NORM_OPS, SKIP_NORM_OP

EPS = 1e-5
TOLERANCE = {np.float32: 1e-6, np.float16: 2e-3}


def transformers_rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    from transformers.models.mamba.modeling_mamba import MambaRMSNorm

    norm = MambaRMSNorm(x.shape[-1], eps=EPS).to(x.dtype)
    norm.weight.data = weight.clone()
    return norm(x)


def relative(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def inputs(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((2, 3, 64)).astype(dtype), rng.standard_normal((2, 3, 64)).astype(dtype),
            rng.uniform(0.5, 1.5, 64).astype(dtype))


def test_eager_ops_are_transformers_norm_of_the_sum():
    x, skip, weight = (torch.from_numpy(a).double() for a in inputs(np.float32))
    torch.testing.assert_close(torch.ops.mamba_export.rms_norm(x, weight, EPS), transformers_rms_norm(x, weight))
    normed, total = torch.ops.mamba_export.skip_rms_norm(x, skip, weight, EPS)
    torch.testing.assert_close(total, x + skip)
    torch.testing.assert_close(normed, transformers_rms_norm(x + skip, weight))


def _graph(dtype) -> bytes:
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.FLOAT16
    io = [helper.make_tensor_value_info(n, elem, [2, 3, 64]) for n in ("x", "skip")]
    scale = helper.make_tensor_value_info("w", elem, [64])
    nodes = [helper.make_node(NORM_OP, ["x", "w"], ["y"], epsilon=EPS),
             helper.make_node(SKIP_NORM_OP, ["x", "skip", "w"], ["y_skip", "", "", "total"], domain=MS_DOMAIN,
                              epsilon=EPS)]
    outputs = [helper.make_tensor_value_info(n, elem, None) for n in ("y", "y_skip", "total")]
    model = helper.make_model(helper.make_graph(nodes, "norms", [*io, scale], outputs),
                              opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(MS_DOMAIN, 1)])
    model.ir_version = 10
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_ort_and_numpy_nodes_match_transformers(dtype):
    from onnx.reference import ReferenceEvaluator

    x, skip, weight = inputs(dtype, seed=1)
    feeds = {"x": x, "skip": skip, "w": weight}
    x64, skip64, w64 = (torch.from_numpy(a.astype(np.float64)) for a in (x, skip, weight))
    expected = [transformers_rms_norm(x64, w64), transformers_rms_norm(x64 + skip64, w64), x64 + skip64]
    model = _graph(dtype)
    ort_out = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    numpy_out = ReferenceEvaluator(model, new_ops=list(NUMPY_NORM_OPS)).run(None, feeds)
    for got in (ort_out, numpy_out):
        for out, ref in zip(got, expected, strict=True):
            assert out.dtype == dtype
            assert relative(out, ref.detach().numpy()) < TOLERANCE[dtype]


def test_translation_table_covers_both_ops():
    table = ort_norms.translation_table()
    assert set(table) == {torch.ops.mamba_export.rms_norm.default, torch.ops.mamba_export.skip_rms_norm.default}
