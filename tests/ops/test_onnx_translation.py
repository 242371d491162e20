"""The facade module names both ONNX forms of our ops."""

from mamba_export.ops import onnx_custom, onnx_standard, onnx_translation


def test_translation_module_exposes_both_forms():
    assert onnx_translation.custom_translation_table is onnx_custom.custom_translation_table
    assert onnx_translation.op_schema is onnx_custom.op_schema
    assert onnx_translation.causal_conv_schema is onnx_custom.causal_conv_schema
    assert onnx_translation.rewrite_model is onnx_standard.rewrite_model
    assert onnx_translation.rewrite_file is onnx_standard.rewrite_file


def test_translation_table_covers_both_ops():
    import torch

    table = onnx_custom.custom_translation_table()
    assert table[torch.ops.mamba_export.selective_scan.default] is onnx_custom.selective_scan_to_onnx
    assert table[torch.ops.mamba_export.causal_conv1d.default] is onnx_custom.causal_conv1d_to_onnx
