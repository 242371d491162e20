"""The two ONNX forms of our ops (SelectiveScan, CausalConv1d), in one place for callers.

* custom backend: :func:`custom_translation_table` makes ``torch.onnx.export`` write
  one node of our domain per op call (``onnx_custom``);
* standard backend: :func:`rewrite_model` / :func:`rewrite_file` replace those nodes
  with standard ONNX ops (``onnx_standard``).
"""

from mamba_export.ops.onnx_custom import (
    causal_conv1d_to_onnx,
    causal_conv_schema,
    custom_translation_table,
    op_schema,
    selective_scan_to_onnx,
)
from mamba_export.ops.onnx_standard import rewrite_file, rewrite_model

__all__ = ["causal_conv1d_to_onnx", "causal_conv_schema", "custom_translation_table", "op_schema",
           "selective_scan_to_onnx", "rewrite_file", "rewrite_model"]
