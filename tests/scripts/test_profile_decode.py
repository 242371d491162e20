"""scripts/profile_decode.py's loop(): generate()'s own loop with its decoder's calls timed where
they happen. On the CPU the decoder is the host one, so the bookkeeping runs here; the CUDA
figures come from the GPU round."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

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
    assert set(row) == {"loop_step_ms", "loop_next_tokens_ms", "loop_python_ms"}
    assert row["loop_step_ms"] > 0 and row["loop_next_tokens_ms"] > 0 and row["loop_python_ms"] >= 0
    # The timers wrap one decoder of its own: the model generates as before.
    np.testing.assert_array_equal(model.generate(ids, max_new_tokens=5, eos_token_id=[]), before)
