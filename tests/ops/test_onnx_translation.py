"""The facade module names both ONNX forms of SelectiveScan."""

from mamba_export.ops import onnx_custom, onnx_standard, onnx_translation


def test_translation_module_exposes_both_forms():
    assert onnx_translation.custom_translation_table is onnx_custom.custom_translation_table
    assert onnx_translation.op_schema is onnx_custom.op_schema
    assert onnx_translation.rewrite_model is onnx_standard.rewrite_model
    assert onnx_translation.rewrite_file is onnx_standard.rewrite_file
