"""Ways to run an exported graph in tests without the compiled custom-op library.

``reference_session`` runs a graph with ``onnx.reference.ReferenceEvaluator``; its
SelectiveScan and CausalConv1d nodes are computed by the package's NumPy implementations
(``mamba_export.ops.numpy_op``, themselves checked against the float64 references) and
ONNX Runtime's fused norms by ``mamba_export.ops.ort_norm_nodes``, so a
test checks the exported graph's wiring independently of any C++ or Triton code.
"""

from __future__ import annotations

from onnx.reference import ReferenceEvaluator

from mamba_export.ops.numpy_op import NUMPY_OPS
from mamba_export.ops.ort_norm_nodes import NUMPY_NORM_OPS


def reference_session(model_path) -> ReferenceEvaluator:
    return ReferenceEvaluator(str(model_path), new_ops=[*NUMPY_OPS, *NUMPY_NORM_OPS])
