"""validate(): good exports pass every check, broken ones raise ParityError naming the output."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from mamba_export.errors import CheckpointError, MambaExportError, ParityError
from mamba_export.options import ExportOptions
from mamba_export.parity.checks import CHECKS
from mamba_export.parity.validate import FULL_LENGTHS, _lengths, validate
from mamba_export.runtime.folder import load_export_folder
from tests.support.tiny_models import save_tiny_model, tiny_model

QUICK = ExportOptions(check_lengths=(1, 9), show_progress=False)
_DEFAULTS = ExportOptions()


@pytest.fixture(scope="module")
def exported(export_tiny):
    """exported(backend="standard", **variant) -> a cached tiny export (tests/conftest.py)."""

    def get(backend: str = "standard", dtype: str = "fp32", logits: str = "all", base: bool = False,
            name: str = "default") -> Path:
        if backend == "custom":
            from mamba_export.runtime.library import ENV_VAR, build_library

            if not os.environ.get(ENV_VAR):
                build_library()  # incremental: quick once built
        chosen = dict(backend=backend, dtype=dtype, logits=logits)
        options = {key: value for key, value in chosen.items() if getattr(_DEFAULTS, key) != value}
        return export_tiny(name, base=base, **options)

    return get


@pytest.mark.parametrize("backend", ["standard", "custom"])
def test_good_export_passes_every_check(exported, backend):
    report = validate(exported(backend), reference=tiny_model(), options=QUICK)
    assert report.passed
    assert {r.check for r in report.results} == set(CHECKS)
    assert all(r.error <= r.tolerance or r.unit == "tokens" for r in report.results)
    table = report.format_table()
    assert "PASSED" in table and "logits L=1 " in table and "logits L=9 " in table
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["passed"] is True and as_dict["backend"] == backend
    assert len(as_dict["results"]) == len(report.results)


@pytest.mark.parametrize("variant", [dict(dtype="fp16"), dict(logits="last"), dict(base=True),
                                     dict(name="use_bias")])
def test_export_variants_pass(exported, variant):
    reference = tiny_model(variant.get("name", "default"), base=variant.get("base", False))
    report = validate(exported(**variant), reference=reference, options=QUICK)
    assert report.passed
    if variant.get("base"):
        assert "greedy" not in {r.check for r in report.results}
        assert all("last_hidden_state" in r.output or "state" in r.output for r in report.results)


def _corrupt(source: Path, target: Path) -> None:
    """Copy an export and scale the first layer's in_proj weights by 1.01 (a 1% error in one layer).

    The weights are found as the initializer feeding the first MatMul node (the embedding is a
    Gather): the exporter stores the transposed weight as a new initializer, so its name is not
    the parameter's.
    """
    shutil.copytree(source, target)
    model = onnx.load(str(target / "model.onnx"))
    initializers = {t.name: t for t in model.graph.initializer}
    in_proj = next(node for node in model.graph.node if node.op_type == "MatMul")
    tensor = next(initializers[name] for name in in_proj.input if name in initializers)
    weights = numpy_helper.to_array(tensor) * np.float32(1.01)
    tensor.CopyFrom(numpy_helper.from_array(weights, tensor.name))
    onnx.save(model, str(target / "model.onnx"))


@pytest.mark.parametrize("backend", ["standard", "custom"])
def test_corrupted_export_fails(exported, tmp_path, backend):
    _corrupt(exported(backend), tmp_path / "broken")
    with pytest.raises(ParityError) as caught:
        validate(tmp_path / "broken", reference=tiny_model(), options=QUICK)
    report = caught.value.report
    assert report is not None and not report.passed
    message = str(caught.value)
    assert "logits L=9 has error" in message and "> tolerance" in message
    failed = {r.check for r in report.failures}
    assert {"logits", "decode", "chunked"} <= failed
    assert "FAIL" in report.format_table() and report.to_dict()["passed"] is False


def test_wrong_reference_weights_fail(exported):
    with pytest.raises(ParityError, match="logits"):
        validate(exported("standard"), reference=tiny_model(seed=1), options=QUICK, checks=["logits"])


def test_checks_subset_and_unknown_names(exported):
    report = validate(exported("standard"), reference=tiny_model(), options=QUICK, checks=["states"])
    assert {r.check for r in report.results} == {"states"} and len(report.results) == 2
    with pytest.raises(MambaExportError, match="unknown parity checks"):
        validate(exported("standard"), reference=tiny_model(), checks=["nope"])


def test_reference_none_after_in_memory_export_asks_for_the_model(exported):
    with pytest.raises(CheckpointError, match="--model"):
        validate(exported("standard"))


def test_reference_none_uses_the_recorded_folder(exported, tmp_path):
    source = save_tiny_model(tmp_path / "source")
    target = tmp_path / "export"
    shutil.copytree(exported("standard"), target)
    info = json.loads((target / "export_info.json").read_text())
    info["source"] = {"model": str(source), "random_weights": False, "preset": None}
    (target / "export_info.json").write_text(json.dumps(info))
    report = validate(target, options=QUICK, checks=["logits"])
    assert report.passed and str(source) in report.reference


def test_reference_with_other_shapes_is_refused(exported):
    from tests.support.tiny_models import tiny_model as make

    with pytest.raises(CheckpointError, match="state_size"):
        validate(exported("standard"), reference=make("state_4"), options=QUICK)


def test_lengths_from_options_record_and_full(exported):
    folder = load_export_folder(exported("standard"))
    assert _lengths(folder, QUICK, full=False) == (1, 9)
    assert _lengths(folder, None, full=False) == (1, 7, 64)  # recorded at export
    assert set(FULL_LENGTHS) <= set(_lengths(folder, QUICK, full=True))
    assert max(FULL_LENGTHS) >= 1024


def test_full_suite_reaches_1024_tokens(exported):
    report = validate(exported("custom"), reference=tiny_model(), options=QUICK, checks=["logits"], full=True)
    assert report.passed and any(r.output == "logits L=1024" for r in report.results)
