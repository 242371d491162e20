"""scripts/profile_decode.py's loop(): generate()'s own loop with its decoder's calls timed where
they happen. On the CPU the decoder is the host one, so the bookkeeping runs here; the CUDA
figures come from the GPU round."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mamba_export.runtime.model import ORTMambaForCausalLM

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "profile_decode.py"


def _script():
    spec = importlib.util.spec_from_file_location("profile_decode", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_loop_is_split_into_step_next_tokens_and_python(export_tiny):
    model = ORTMambaForCausalLM.from_pretrained(export_tiny())
    ids = np.array([[3, 5, 7, 11]] * 2)
    before = model.generate(ids, max_new_tokens=5, eos_token_id=[])
    row = _script().loop(model, batch=2, tokens=6, rng=np.random.default_rng(0))
    assert set(row) == {"loop_step_ms", "loop_next_tokens_ms", "loop_advance_ms", "loop_tokens_ms", "loop_python_ms"}
    assert row["loop_advance_ms"] == row["loop_tokens_ms"] == 0  # the host decoder reads after every step
    assert row["loop_step_ms"] > 0 and row["loop_next_tokens_ms"] > 0 and row["loop_python_ms"] >= 0
    # The timers wrap one decoder of its own: the model generates as before.
    np.testing.assert_array_equal(model.generate(ids, max_new_tokens=5, eos_token_id=[]), before)


def _event(name, ts, dur):
    return {"name": name, "ts": ts, "dur": dur}


def test_a_trace_is_split_into_steps_with_span_busy_time_and_gaps():
    steps = []
    for k in range(3):  # three steps 1 ms apart; inside each, a dependent launch overlaps its predecessor
        t = 1000.0 * k
        steps += [_event("void ns::(anonymous namespace)::NormKernel<__half, 4>(ns::Params)", t, 4.0),
                  _event("void ns::LinearKernel<__half>(ns::LinearParams)", t + 2.0, 6.0),  # starts inside the norm
                  _event("gemm_kernel", t + 10.0, 5.0)]  # 2 us of gap before it
    partial = [_event("gemm_kernel", 3000.0, 5.0)]  # a step cut by the trace's end is left out
    summary = _script().summarize_steps(list(reversed(steps + partial)))
    assert summary["steps"] == 3 and summary["kernels_per_step"] == 3
    assert summary["span_us"] == 15.0
    assert summary["kernel_us"] == 13.0  # 0..8 and 10..15: the overlap counted once
    assert summary["summed_kernel_us"] == 15.0
    assert summary["gap_us"] == 2.0
    names = {row["kernel"]: row for row in summary["by_kernel"]}
    assert set(names) == {"ns::NormKernel", "ns::LinearKernel", "gemm_kernel"}
    assert names["ns::LinearKernel"]["per_step"] == 1 and names["ns::LinearKernel"]["us_per_step"] == 6.0
    assert [row["adds_us"] for row in summary["first_step"]] == [4.0, 4.0, 7.0]  # adds sum to the span
    assert sum(row["adds_us"] for row in summary["first_step"]) == summary["span_us"]


def test_an_empty_trace_is_an_error_that_says_so():
    with pytest.raises(ValueError, match="no kernel events"):
        _script().summarize_steps([])


def test_a_step_is_split_by_place_in_the_layer():
    step = [{"kernel": "embed", "adds_us": 1.0}]
    for layer in range(3):
        step += [{"kernel": "norm", "adds_us": 1.0 + layer}, {"kernel": "scan", "adds_us": 5.0}]
    step += [{"kernel": "norm", "adds_us": 2.0}, {"kernel": "head", "adds_us": 4.0}]
    layer = _script().per_layer(step, layers=3)
    assert layer["kernels_per_layer"] == 2
    assert [(p["kernel"], p["adds_us"]) for p in layer["places"]] == [("norm", 2.0), ("scan", 5.0)]
    assert layer["outside_layers_us"] == 7.0
    # Traces saved before adds_us: the gap before a kernel plus its duration.
    old = [{"kernel": row["kernel"], "gap_before_us": 0.5, "us": row["adds_us"] - 0.5} for row in step]
    assert _script().per_layer(old, layers=3) == layer
    with pytest.raises(ValueError, match="no run of 4 layers"):
        _script().per_layer(step, layers=4)


def test_a_saved_timeline_without_its_layer_count_is_refused_by_name(tmp_path):
    import subprocess
    import sys

    saved = tmp_path / "timeline.json"
    saved.write_text('{"runs": []}')
    done = subprocess.run([sys.executable, str(SCRIPT), str(saved)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "does not say how many layers" in done.stderr and "--layers" in done.stderr
