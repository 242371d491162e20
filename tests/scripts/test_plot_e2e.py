"""scripts/plot_e2e.py: a bench_e2e.py run becomes a PNG; anything else is refused by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "plot_e2e.py"


def _plot(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


RUN = {"date": "2026-12-01", "versions": {"gpu": "H200", "onnxruntime": "1.31.1"},
           "args": {"model": "preset:mamba-130m", "dtype": "fp16"},
           "results": {"ort-custom": {"prefill_ms": {"512": 3.4, "2048": 5.8},
                                      "decode_tokens_per_s": {"1": 1257.0, "32": 31961.0},
                                      "first_call_ms": {"17": {"first": 3.0, "second": 2.5}}},
                       "transformers": {"prefill_ms": {"512": 800.0}, "decode_tokens_per_s": {"1": 50.0}}}}
BASELINES = {"results": {"130m": {"mamba_ssm cg=True": {
    "decode": {"1": {"tokens_per_s": 1345.0}, "32": {"tokens_per_s": 39832.0}},
    "prefill_s": {"2048": {"median_s": 0.015}}}}}}


def test_a_run_becomes_a_png(tmp_path):
    source = tmp_path / "run.json"
    source.write_text(json.dumps(RUN))
    target = tmp_path / "img" / "e2e.png"
    done = _plot(source, target)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_file_that_is_not_a_run_is_refused(tmp_path):
    source = tmp_path / "other.json"
    source.write_text(json.dumps({"rows": []}))
    done = _plot(source, tmp_path / "out.png")
    assert done.returncode == 2 and "not a bench_e2e.py result" in done.stderr
    assert not (tmp_path / "out.png").exists()
    missing = _plot(tmp_path / "missing.json", tmp_path / "out.png")
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_baselines_join_the_panels_and_a_wrong_file_is_refused(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import plot_e2e
    finally:
        sys.path.remove(str(SCRIPT.parent))
    rows = plot_e2e.baseline_rows(BASELINES, "preset:mamba-130m")
    assert rows == {"mamba_ssm cg=True": {"decode_tokens_per_s": {"1": 1345.0, "32": 39832.0},
                                          "prefill_ms": {"2048": 15.0}}}
    source, baselines = tmp_path / "run.json", tmp_path / "baselines.json"
    source.write_text(json.dumps(RUN))
    baselines.write_text(json.dumps(BASELINES))
    done = _plot(source, tmp_path / "with.png", "--baselines", baselines)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "with.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other_model = dict(RUN, args={"model": "preset:mamba-1.4b", "dtype": "fp16"})
    source.write_text(json.dumps(other_model))
    done = _plot(source, tmp_path / "other.png", "--baselines", baselines)
    assert done.returncode == 2 and "no rows for the model 'preset:mamba-1.4b'" in done.stderr
    assert not (tmp_path / "other.png").exists()
    baselines.write_text(json.dumps({"rows": []}))
    done = _plot(tmp_path / "run.json", tmp_path / "bad.png", "--baselines", baselines)
    assert done.returncode == 2 and "not a bench_baselines.py result" in done.stderr
