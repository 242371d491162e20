"""Token choice: greedy, top-k, top-p and seeded sampling on hand-made logits."""

from __future__ import annotations

import numpy as np
import pytest

from mamba_export.runtime import sampling


def test_greedy_takes_first_maximum():
    logits = np.array([[0.0, 3.0, 3.0, 1.0], [5.0, -1.0, 0.0, 4.9]], np.float32)
    np.testing.assert_array_equal(sampling.greedy(logits), [1, 0])


def test_top_k_keeps_the_k_largest():
    scores = np.array([[1.0, 4.0, 3.0, 2.0]])
    kept = sampling.top_k_filter(scores, 2)
    np.testing.assert_array_equal(np.isfinite(kept), [[False, True, True, False]])
    np.testing.assert_array_equal(sampling.top_k_filter(scores, 0), scores)
    np.testing.assert_array_equal(sampling.top_k_filter(scores, 9), scores)


@pytest.mark.parametrize("top_p, kept", [(0.5, [True, False, False, False]),
                                         (0.7, [True, True, False, False]),
                                         (0.96, [True, True, True, True]),
                                         (0.01, [True, False, False, False])])
def test_top_p_keeps_smallest_set_reaching_p(top_p, kept):
    probs = np.array([[0.5, 0.3, 0.15, 0.05]])
    filtered = sampling.top_p_filter(np.log(probs), top_p)
    np.testing.assert_array_equal(np.isfinite(filtered), [kept])


def test_top_p_handles_unsorted_rows():
    probs = np.array([[0.05, 0.3, 0.5, 0.15]])
    filtered = sampling.top_p_filter(np.log(probs), 0.7)
    np.testing.assert_array_equal(np.isfinite(filtered), [[False, True, True, False]])


def test_sampling_follows_the_softmax():
    # 20000 draws: the standard error of a frequency is below 0.004, so 0.02 is about 5 sigma.
    logits = np.log(np.array([[0.6, 0.25, 0.1, 0.05]]))
    rng = np.random.default_rng(0)
    draws = np.concatenate([sampling.sample(np.repeat(logits, 1000, 0), 1.0, 0, 1.0, rng) for _ in range(20)])
    frequencies = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(frequencies, [0.6, 0.25, 0.1, 0.05], atol=0.02)


def test_filtered_tokens_are_never_drawn():
    logits = np.repeat(np.log(np.array([[0.4, 0.3, 0.2, 0.1]])), 5000, 0)
    draws = sampling.sample(logits, 1.0, 2, 1.0, np.random.default_rng(1))
    assert set(np.unique(draws)) == {0, 1}
    draws = sampling.sample(logits, 1.0, 0, 0.6, np.random.default_rng(2))
    assert set(np.unique(draws)) == {0, 1}


def test_low_temperature_is_greedy_and_high_is_flat():
    logits = np.repeat(np.array([[1.0, 2.0, 0.5]]), 4000, 0)
    cold = sampling.sample(logits, 1e-3, 0, 1.0, np.random.default_rng(3))
    assert (cold == 1).all()
    hot = sampling.sample(logits, 1e3, 0, 1.0, np.random.default_rng(4))
    np.testing.assert_allclose(np.bincount(hot, minlength=3) / hot.size, [1 / 3] * 3, atol=0.03)


def test_same_seed_same_draws():
    logits = np.random.default_rng(5).normal(size=(3, 50))
    first = sampling.sample(logits, 0.8, 10, 0.9, np.random.default_rng(7))
    again = sampling.sample(logits, 0.8, 10, 0.9, np.random.default_rng(7))
    np.testing.assert_array_equal(first, again)


def test_half_precision_logits():
    logits = np.array([[0.0, 1.0, 8.0]], np.float16)
    assert sampling.sample(logits, 1.0, 1, 1.0, np.random.default_rng(0))[0] == 2
