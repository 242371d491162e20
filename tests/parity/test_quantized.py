"""The parity check of int4 exports: a correct one passes against its dequantized weights and
within the stated quantization cost; a damaged 4-bit weight fails."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from mamba_export.errors import ParityError
from mamba_export.options import ExportOptions
from mamba_export.parity.quantized import MIN_TOP1_AGREEMENT, dequantized_reference
from mamba_export.parity.validate import validate
from mamba_export.runtime.folder import load_export_folder
from tests.support.tiny_models import tiny_model

QUICK = ExportOptions(check_lengths=(1, 9), show_progress=False)


@pytest.mark.parametrize("backend, dtype, accuracy_level",
                         [("custom", "fp32", 4), ("standard", "fp32", 4), ("custom", "fp32", 0),
                          ("custom", "fp16", 4)])
def test_int4_export_passes(export_tiny, backend, dtype, accuracy_level):
    folder = export_tiny("default", backend=backend, dtype=dtype, quantize="int4", block_size=32,
                         accuracy_level=accuracy_level)
    report = validate(folder, reference=tiny_model(), options=QUICK)
    checks = {r.check for r in report.results}
    assert {"int4 weights", "logits (int4)", "decode (int4)", "padding (int4)", "greedy (int4)", "int4 cost"} <= checks
    weights = next(r for r in report.results if r.check == "int4 weights")
    assert 0.3 < weights.error <= 0.51  # rounding to the nearest code: up to half a step
    top1 = next(r for r in report.results if r.output == "top-1 disagreement")
    assert 1 - top1.error >= MIN_TOP1_AGREEMENT
    # float compute on the dequantized weights: the float rule itself, with tolerances far under
    # the dtype's ceiling (fp16: 8 x PyTorch's own error of about 1.8e-3 on this model, + floor)
    implementation = [r for r in report.results if r.check.endswith("(int4)") and r.unit == "relative"]
    assert max(r.tolerance for r in implementation) < (1e-4 if dtype == "fp32" else 2e-2)
    assert ("int4 compute" in checks) == (accuracy_level == 4)
    assert "half a 4-bit step" in report.format_table() and report.to_dict()["rule"].startswith("weights within")


def test_dequantized_reference_unties_the_head_only():
    model = tiny_model()
    assert model.lm_head.weight is model.backbone.embeddings.weight
    record = {"block_size": 32, "quantized": []}
    same = dequantized_reference(model, _empty_graph_path(), record)
    assert torch.equal(same.lm_head.weight, model.lm_head.weight)


def _empty_graph_path(tmp=[]):  # noqa: B006 (one file for the module)
    if not tmp:
        import tempfile

        from onnx import helper
        path = tempfile.mkdtemp() + "/empty.onnx"
        onnx.save(helper.make_model(helper.make_graph([], "empty", [], [])), path)
        tmp.append(path)
    return tmp[0]


def test_damaged_int4_weight_fails(export_tiny, tmp_path):
    source = export_tiny("default", quantize="int4", block_size=32)
    folder = tmp_path / "damaged"
    shutil.copytree(source, folder)
    model = onnx.load(folder / "model.onnx")
    target = next(i for i in model.graph.initializer if i.name.endswith(".int4.B") and "linear_1" in i.name)
    codes = numpy_helper.to_array(target)
    target.CopyFrom(numpy_helper.from_array((codes >> 4) | (codes << 4), target.name))  # nibbles swapped
    onnx.save(model, folder / "model.onnx")
    with pytest.raises(ParityError) as caught:
        validate(folder, reference=tiny_model(), options=QUICK)
    failed = {r.check for r in caught.value.report.failures}
    assert failed == {"int4 weights"}, failed  # the graph computes its (damaged) weights faithfully


def test_float_export_is_not_judged_by_the_int4_rule(export_tiny):
    folder = export_tiny("default")
    assert load_export_folder(folder).info.get("quantization") is None
    report = validate(folder, reference=tiny_model(), options=QUICK)
    assert not any("int4" in r.check for r in report.results)
    assert np.isfinite([r.error for r in report.results]).all()
