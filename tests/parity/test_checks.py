"""The checks one by one on a good export, their helpers, and the greedy tie rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mamba_export.parity.checks import (
    CHECKS,
    ParityContext,
    check_greedy,
    chunk_bounds,
    padded_batch,
)
from mamba_export.parity.oracle import Float64Mamba
from mamba_export.parity.torch_runs import TorchRunner
from mamba_export.runtime.model import ORTMambaForCausalLM


def test_chunk_bounds_cover_the_prompt_once():
    for length in (1, 2, 5, 16, 1024):
        bounds = chunk_bounds(length)
        assert bounds[0][0] == 0 and bounds[-1][1] == length
        assert all(a < b for a, b in bounds)
        assert all(prev[1] == nxt[0] for prev, nxt in zip(bounds, bounds[1:], strict=False))
    assert chunk_bounds(64) == [(0, 1), (1, 4), (4, 32), (32, 64)]


def test_padded_batch_pads_on_the_left():
    ids, mask = padded_batch([np.array([5, 6, 7]), np.array([8])])
    np.testing.assert_array_equal(ids, [[5, 6, 7], [0, 0, 8]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [0, 0, 1]])


@pytest.fixture(scope="module")
def context(exported, reference_model):
    model = ORTMambaForCausalLM.from_pretrained(exported("custom"))
    runner = TorchRunner(reference_model, torch.float32, with_head=True)
    return ParityContext(export=model, oracle=Float64Mamba(reference_model), torch_dtype=runner,
                         torch_fp32=runner, dtype="fp32", head="logits", last_only=False, vocab_size=61,
                         lengths=(1, 12), greedy_tokens=20)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_each_check_passes_on_a_good_export(context, name):
    with torch.no_grad():
        results = CHECKS[name](context)
    assert results and all(r.passed for r in results)
    assert all(r.check == name for r in results)
    for result in results:
        if result.unit == "relative":
            assert 0 < result.baseline < 1e-5 and result.error < result.tolerance


def test_tokens_are_seeded_per_check(context):
    np.testing.assert_array_equal(context.tokens(2, 5, salt=1), context.tokens(2, 5, salt=1))
    assert (context.tokens(2, 5, salt=1) != context.tokens(2, 5, salt=2)).any()


class _Diverging:
    """An export whose greedy run takes the runner-up token at one step."""

    def __init__(self, context, step: int):
        self.context, self.step = context, step

    def generate(self, ids, max_new_tokens, eos_token_id):
        tokens = self.context.torch_fp32.greedy(ids, max_new_tokens)
        prefix = tokens[:, :ids.shape[1] + self.step]
        logits = self.context.oracle_head(prefix)[0, -1]
        tokens[0, ids.shape[1] + self.step] = int(np.argsort(logits)[-2])
        return tokens


def test_greedy_divergence_beyond_rounding_fails(context):
    broken = ParityContext(**{**context.__dict__, "export": _Diverging(context, step=3)})
    (result,) = check_greedy(broken)
    assert not result.passed and result.error >= 1
    assert "first differs at token 3" in result.detail and "real difference" in result.detail


def test_greedy_near_tie_is_accepted(context, monkeypatch):
    from mamba_export.parity import checks

    broken = ParityContext(**{**context.__dict__, "export": _Diverging(context, step=5)})
    monkeypatch.setattr(checks, "tolerance", lambda baseline, dtype: 1.0)  # every gap is a tie
    (result,) = check_greedy(broken)
    assert result.passed and "near tie" in result.detail and "token 5" in result.detail
