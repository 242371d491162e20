"""Ways to run an exported graph in tests without the compiled custom-op library.

``reference_session`` runs a graph with ``onnx.reference.ReferenceEvaluator``; its
SelectiveScan node is computed by the float64 PyTorch reference, so a test checks
the exported graph's wiring independently of any C++ or Triton code.
"""

from __future__ import annotations

import numpy as np
import torch
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from mamba_export.ops import reference
from mamba_export.ops.selective_scan import DOMAIN, OP_TYPE


def _tensor(array):
    return None if array is None else torch.from_numpy(np.array(array))


class SelectiveScanByReference(OpRun):
    op_domain = DOMAIN

    def _run(self, u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None,
             delta_softplus=0):
        args = [_tensor(x) for x in (u, delta, A, B, C, D, z, delta_bias, initial_state)]
        y, last_state = reference.selective_scan(*args, delta_softplus=bool(delta_softplus))
        return y.numpy(), last_state.to(torch.float32).numpy()


SelectiveScanByReference.__name__ = OP_TYPE


def reference_session(model_path) -> ReferenceEvaluator:
    return ReferenceEvaluator(str(model_path), new_ops=[SelectiveScanByReference])
