"""An inconclusive parity check from the CLI: export keeps the folder, warns and exits 3;
check exits 3; only a pass exits 0.

Inconclusive needs PyTorch to be further from float64 than the dtype's ceiling. A tiny
model is far inside every ceiling, so the float32 ceiling is lowered for these tests
(in process, through ``mamba_export.cli.main.main``).
"""

from __future__ import annotations

import json

import pytest

from mamba_export.cli.main import main
from mamba_export.parity.report import REALISTIC_ROUTE
from mamba_export.parity.tolerances import CEILING
from tests.support.tiny_models import save_tiny_model


@pytest.fixture
def low_ceiling(monkeypatch):
    monkeypatch.setitem(CEILING, "fp32", 1e-12)  # below any baseline: every output is inconclusive


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from mamba_export.runtime.library import build_library

    build_library()
    return save_tiny_model(tmp_path_factory.mktemp("inconclusive_src") / "model")


def test_export_keeps_the_folder_warns_and_exits_3(source, tmp_path, low_ceiling, capsys):
    out = tmp_path / "out"
    assert main(["export", "--model", str(source), str(out), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "INCONCLUSIVE" in err and "not verified" in err and REALISTIC_ROUTE in err
    parity = json.loads((out / "export_info.json").read_text())["parity"]
    assert parity["status"] == "inconclusive" and parity["passed"] is False
    assert parity["inconclusive_reason"] and all(r["status"] != "failed" for r in parity["results"])


def test_check_exits_3_when_inconclusive_and_0_when_passed(source, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert main(["export", "--model", str(source), str(out), "--quiet", "--no-check"]) == 0
    assert main(["check", str(out), "--model", str(source), "--json", str(tmp_path / "p.json")]) == 0
    monkeypatch.setitem(CEILING, "fp32", 1e-12)
    capsys.readouterr()
    assert main(["check", str(out), "--model", str(source), "--json", str(tmp_path / "p.json")]) == 3
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("INCONCLUSIVE: ") and "random weights" in lines[-1]
    assert json.loads((tmp_path / "p.json").read_text())["status"] == "inconclusive"
