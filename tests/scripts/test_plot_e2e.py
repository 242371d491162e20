"""scripts/plot_e2e.py: a bench_e2e.py run becomes a PNG; anything else is refused by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "plot_e2e.py"


def _plot(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_a_run_becomes_a_png(tmp_path):
    run = {"date": "2026-12-01", "versions": {"gpu": "H200", "onnxruntime": "1.31.1"},
           "args": {"model": "preset:mamba-130m", "dtype": "fp16"},
           "results": {"ort-custom": {"prefill_ms": {"512": 3.4, "2048": 5.8},
                                      "decode_tokens_per_s": {"1": 1257.0, "32": 31961.0},
                                      "first_call_ms": {"17": {"first": 3.0, "second": 2.5}}},
                       "transformers": {"prefill_ms": {"512": 800.0}, "decode_tokens_per_s": {"1": 50.0}}}}
    source = tmp_path / "run.json"
    source.write_text(json.dumps(run))
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
