"""ONNX Runtime's fused RMS-norm nodes: their names, and NumPy forms for ``onnx.reference``.

The custom backend's graphs norm each block with ``SimplifiedLayerNormalization``
(standard domain, an ONNX Runtime schema) and ``SkipSimplifiedLayerNormalization``
(``com.microsoft``); ``mamba_export.ops.ort_norms`` writes them. ONNX's reference
evaluator knows neither, so the tests that run graphs without ONNX Runtime add these
two node implementations (``ReferenceEvaluator(model, new_ops=[...])``). They follow
ONNX Runtime's definition: ``x / sqrt(mean(x^2) + epsilon) * scale`` in float32, the
result rounded to the input dtype; the skip form also returns ``input + skip``.
"""

from __future__ import annotations

import numpy as np
from onnx.reference.op_run import OpRun

MS_DOMAIN = "com.microsoft"
NORM_OP = "SimplifiedLayerNormalization"
SKIP_NORM_OP = "SkipSimplifiedLayerNormalization"
# The node types a fused norm becomes.
FUSED_NORM_OPS = (NORM_OP, SKIP_NORM_OP)


def _inverse_rms(x: np.ndarray, epsilon: float) -> np.ndarray:
    xf = x.astype(np.float32)
    return (1.0 / np.sqrt(np.mean(xf * xf, axis=-1, keepdims=True) + np.float32(epsilon))).astype(np.float32)


def _normed(x: np.ndarray, scale: np.ndarray, epsilon: float) -> np.ndarray:
    return (x.astype(np.float32) * _inverse_rms(x, epsilon) * scale.astype(np.float32)).astype(x.dtype)


class SimplifiedLayerNormalization(OpRun):
    """The evaluator matches nodes by (op_domain, class name), hence the class name."""

    op_domain = ""

    def _run(self, x, scale, axis=-1, epsilon=1e-5, stash_type=1):
        return (_normed(x, scale, epsilon),)


class SkipSimplifiedLayerNormalization(OpRun):
    op_domain = MS_DOMAIN

    def _run(self, x, skip, gamma, bias=None, epsilon=1e-5):
        total = (x.astype(np.float32) + skip.astype(np.float32)).astype(x.dtype)
        inverse = _inverse_rms(total, epsilon)
        # mean and inv_std_var as ONNX Runtime defines them (the mean is 0 for a simplified norm).
        return _normed(total, gamma, epsilon), np.zeros_like(inverse), inverse, total


NUMPY_NORM_OPS = (SimplifiedLayerNormalization, SkipSimplifiedLayerNormalization)
