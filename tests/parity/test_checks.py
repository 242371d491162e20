"""The checks one by one on a good export, their helpers, the greedy tie rule, and a baseline
that could not run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mamba_export.parity import hf_cache
from mamba_export.parity.checks import (
    CHECKS,
    ParityContext,
    check_decode,
    check_greedy,
    check_states,
    chunk_bounds,
    padded_batch,
)
from mamba_export.parity.oracle import Float64Mamba
from mamba_export.parity.tolerances import FAILED, GREEDY_MISMATCHES_ALLOWED, INCONCLUSIVE, PASSED
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
                         dtype="fp32", head="logits", last_only=False, vocab_size=61,
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
    """An export whose greedy run takes the oracle's runner-up token at the given steps and
    the argmax everywhere else (given its own prefix)."""

    def __init__(self, context, steps):
        self.context, self.steps = context, set(steps)

    def generate(self, ids, max_new_tokens, eos_token_id):
        tokens = np.asarray(ids)
        for step in range(max_new_tokens):
            logits = self.context.oracle_head(tokens)[0, -1]
            pick = int(np.argsort(logits)[-2 if step in self.steps else -1])
            tokens = np.concatenate([tokens, [[pick]]], axis=1)
        return tokens


def _with_export(context, export):
    return ParityContext(**{**context.__dict__, "export": export})


def test_greedy_divergence_beyond_rounding_fails(context):
    (result,) = check_greedy(_with_export(context, _Diverging(context, [3])))
    assert result.status == FAILED and result.error == 1
    assert "token 3:" in result.detail and "real difference" in result.detail and "margin" in result.detail


def test_greedy_near_tie_is_accepted_with_its_margin(context, monkeypatch):
    from mamba_export.parity import checks

    monkeypatch.setattr(checks, "tolerance", lambda baseline, dtype: 1.0)  # every gap is a tie
    (result,) = check_greedy(_with_export(context, _Diverging(context, [5])))
    assert result.status == PASSED and result.error == 1
    assert "token 5:" in result.detail and "near tie" in result.detail and "margin" in result.detail


def test_greedy_compares_every_token_and_counts_near_ties(context, monkeypatch):
    from mamba_export.parity import checks

    monkeypatch.setattr(checks, "tolerance", lambda baseline, dtype: 1.0)
    steps = list(range(1, 2 * (GREEDY_MISMATCHES_ALLOWED + 1), 2))  # one more than allowed, spread out
    (result,) = check_greedy(_with_export(context, _Diverging(context, steps)))
    assert result.status == FAILED and result.error == len(steps)
    assert f"{len(steps)} near ties (at most {GREEDY_MISMATCHES_ALLOWED})" in result.detail
    late = _Diverging(context, [context.greedy_tokens - 1])  # the last token is judged too
    monkeypatch.undo()
    (result,) = check_greedy(_with_export(context, late))
    assert result.status == FAILED and f"token {context.greedy_tokens - 1}:" in result.detail


def test_greedy_tie_under_a_tolerance_above_the_ceiling_is_inconclusive(context, monkeypatch):
    from mamba_export.parity import checks

    monkeypatch.setattr(checks, "tolerance", lambda baseline, dtype: 1.0)
    monkeypatch.setattr(checks, "conclusive", lambda baseline, dtype: False)
    (result,) = check_greedy(_with_export(context, _Diverging(context, [4])))
    assert result.status == INCONCLUSIVE and "ceiling" in result.detail


def _tie(index: int, conclusive: bool = True):
    from mamba_export.parity.checks import _Step

    return _Step(index, chosen=1, best=2, margin=0.01, allowed=0.1, conclusive=conclusive)


def test_greedy_status_rule():
    """Near ties are allowed up to GREEDY_MISMATCHES_ALLOWED plus PyTorch's own misses in the
    export dtype; more fail unless PyTorch misses more than GREEDY_MISMATCHES_ALLOWED (then the
    run cannot tell a broken export from a right one)."""
    from mamba_export.parity.checks import _Step, greedy_status

    many = [_tie(i) for i in range(GREEDY_MISMATCHES_ALLOWED + 1)]
    assert greedy_status([], 0) == PASSED
    assert greedy_status(many[:GREEDY_MISMATCHES_ALLOWED], 0) == PASSED
    assert greedy_status(many, 0) == FAILED
    assert greedy_status(many, 1) == PASSED  # one more near tie than allowed, one PyTorch has too
    more = [_tie(i) for i in range(GREEDY_MISMATCHES_ALLOWED + 4)]
    assert greedy_status(more, GREEDY_MISMATCHES_ALLOWED) == FAILED  # 2 beyond what PyTorch explains
    assert greedy_status(more, GREEDY_MISMATCHES_ALLOWED + 1) == INCONCLUSIVE  # PyTorch itself misses often
    assert greedy_status(more, GREEDY_MISMATCHES_ALLOWED + 2) == PASSED
    assert greedy_status([_tie(0, conclusive=False)], 0) == INCONCLUSIVE
    real = _Step(3, chosen=1, best=2, margin=0.5, allowed=0.1, conclusive=True)
    assert greedy_status([real], 50) == FAILED  # a real difference fails whatever PyTorch does


def test_checks_without_a_transformers_cache_fail(context, monkeypatch):
    monkeypatch.setattr(hf_cache, "output_cache", lambda output: None)
    (decode,) = check_decode(context)
    assert decode.status == FAILED and "no PyTorch baseline" in decode.detail and "no cache" in decode.detail
    assert all(r.status == FAILED for r in check_states(context))
