"""Ways to run an exported graph in tests without the compiled custom-op library.

``reference_session`` runs a graph with ``onnx.reference.ReferenceEvaluator``; its
SelectiveScan node is computed by the package's NumPy implementation of the op
(``mamba_export.ops.numpy_op``, itself checked against the float64 reference), so a
test checks the exported graph's wiring independently of any C++ or Triton code.
"""

from __future__ import annotations

from onnx.reference import ReferenceEvaluator

from mamba_export.ops.numpy_op import SelectiveScan


def reference_session(model_path) -> ReferenceEvaluator:
    return ReferenceEvaluator(str(model_path), new_ops=[SelectiveScan])
