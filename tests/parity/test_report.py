"""ParityReport: verdict, JSON form and the terminal table."""

from __future__ import annotations

import json

import pytest

from mamba_export.parity.report import REALISTIC_ROUTE, CheckResult, ParityReport
from mamba_export.parity.tolerances import FACTOR, FAILED, INCONCLUSIVE, PASSED


def _report(*passed: bool) -> ParityReport:
    report = ParityReport("/tmp/out", "custom", "fp32", "cpu", "preset:mamba-130m (random weights, seed 0)")
    for index, ok in enumerate(passed):
        error = 1e-7 if ok else 1e-3
        report.add([CheckResult("logits", f"logits L={index + 1}", error, 1e-7, 8.8e-7, PASSED if ok else FAILED)])
    return report


def test_passed_needs_results_and_no_failure():
    assert not ParityReport("f", "custom", "fp32", "cpu", "r").passed  # nothing checked
    assert _report(True, True).passed
    failing = _report(True, False)
    assert not failing.passed and [r.output for r in failing.failures] == ["logits L=2"]


def test_to_dict_is_json_with_every_result():
    data = json.loads(json.dumps(_report(True, False).to_dict()))
    assert data["passed"] is False and data["status"] == "failed" and data["dtype"] == "fp32"
    assert [r["passed"] for r in data["results"]] == [True, False]
    assert [r["output"] for r in data["results"]] == ["logits L=1", "logits L=2"]
    assert data["results"][1]["error"] == 1e-3 and f"{FACTOR:g} * baseline" in data["rule"]


def test_table_has_a_row_per_result_and_the_verdict():
    table = _report(True, False).format_table()
    lines = table.splitlines()
    assert "against preset:mamba-130m" in lines[0]
    assert lines[1].split()[:6] == ["check", "output", "error", "baseline", "tolerance", "result"]
    assert "logits L=1" in lines[2] and lines[2].rstrip().endswith("ok")
    assert "1.00e-03" in lines[3] and "FAIL" in lines[3]
    assert lines[-1] == "FAILED (1 of 2 outputs)"
    assert _report(True).format_table().splitlines()[-1] == "PASSED"


def test_token_results_and_details():
    report = _report(True)
    report.add([CheckResult("greedy", "64 new tokens", 0, None, 0, PASSED, "identical", unit="tokens")])
    row = report.format_table().splitlines()[-2]
    assert "0 tok" in row and "identical" in row and " - " in row


def test_failure_description_names_output_error_and_tolerance():
    result = CheckResult("decode", "logits 32 steps", 2e-3, 1e-4, 4e-4, FAILED, "after a 8-token prefill")
    assert result.describe_failure() == ("decode: logits 32 steps has error 0.002 > tolerance 0.0004 "
                                         "(after a 8-token prefill)")


def _inconclusive_report() -> ParityReport:
    report = ParityReport("/tmp/out", "custom", "fp16", "cpu", "preset:mamba-130m (random weights, seed 0)")
    report.add([CheckResult("logits", "logits L=1", 1e-3, 1e-4, 4e-3, PASSED),
                CheckResult("logits", "logits L=64", 0.3, 0.26, 1.04, INCONCLUSIVE)])
    return report


def test_inconclusive_is_not_a_pass_and_says_why():
    report = _inconclusive_report()
    assert report.status == INCONCLUSIVE and not report.passed and not report.failures
    assert [r.output for r in report.inconclusive] == ["logits L=64"]
    message = report.inconclusive_message()
    assert "0.26 off float64" in message and "random weights" in message and REALISTIC_ROUTE in message
    table = report.format_table().splitlines()
    assert "INCONCLUSIVE" in table[-2] and table[-1].startswith("INCONCLUSIVE: 1 of 2 outputs")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["status"] == "inconclusive" and data["passed"] is False
    assert data["inconclusive_reason"] == message and data["ceiling"] > 0


def test_a_failure_outranks_inconclusive():
    report = _inconclusive_report()
    report.add([CheckResult("decode", "logits 32 steps", 2.0, 0.3, 1.2, FAILED)])
    assert report.status == FAILED and report.format_table().splitlines()[-1] == "FAILED (1 of 3 outputs)"


def test_status_is_checked():
    with pytest.raises(ValueError, match="status"):
        CheckResult("logits", "logits L=1", 0.0, 0.0, 0.0, True)
