"""scripts/bench_e2e.py end to end on the CPU with a tiny model: the export it times has the
logits mode asked for (--logits all is the export's own default, which a user meets), and the
JSON records it with the timings. The CUDA figures come from the GPU round."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_e2e.py"


def _bench(tmp_path, model_dir, *extra):
    out = tmp_path / "run.json"
    command = [sys.executable, str(SCRIPT), "--model", str(model_dir), "--provider", "cpu", "--backends", "custom",
               "--no-torch", "--lengths", "8", "--batches", "2", "--decode-tokens", "3", "--repeats", "1",
               "--threads", "1", "--workdir", str(tmp_path / "work"), "--json", str(out), *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_the_export_timed_has_the_logits_mode_asked_for(tmp_path, tiny_model_dir):
    run = _bench(tmp_path, tiny_model_dir, "--logits", "all")
    assert run["args"]["logits"] == "all"
    folder = Path(run["exports"]["custom"]["folder"])
    assert folder.name.endswith("-all-logits")
    assert json.loads((folder / "export_info.json").read_text())["logits"] == "all"
    timings = run["results"]["ort-custom"]
    assert timings["prefill_ms"]["8"] > 0 and timings["decode_tokens_per_s"]["2"] > 0
    first = timings["first_decode_call_ms"]["2"]  # the first generate() at the batch size, beside the later ones
    assert first["first"] > 0 and first["later"] > 0


def test_an_unknown_logits_mode_is_refused(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--logits", "some"], capture_output=True, text=True)
    assert done.returncode == 2 and "--logits" in done.stderr


def test_a_token_read_interval_is_refused_off_cuda_and_below_one():
    for args, message in ((["--read-every", "4"], "--read-every times the CUDA device decoder"),
                          (["--provider", "cuda", "--read-every", "8", "0"], "--read-every takes step counts >= 1")):
        done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
