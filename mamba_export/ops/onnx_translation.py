"""The two ONNX forms of SelectiveScan, in one place for callers.

* custom backend: :func:`custom_translation_table` makes ``torch.onnx.export`` write
  one ``SelectiveScan`` node of our domain (``onnx_custom``);
* standard backend: :func:`rewrite_model` / :func:`rewrite_file` replace those nodes
  with a standard ONNX ``Scan`` (``onnx_standard``).
"""

from mamba_export.ops.onnx_custom import custom_translation_table, op_schema, selective_scan_to_onnx
from mamba_export.ops.onnx_standard import rewrite_file, rewrite_model

__all__ = ["custom_translation_table", "op_schema", "selective_scan_to_onnx", "rewrite_file", "rewrite_model"]
