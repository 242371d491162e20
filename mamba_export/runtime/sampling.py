"""Choosing the next token from the last position's logits.

Greedy takes the arg-max (the first one on ties, as ``torch.argmax`` does).
Sampling follows transformers' order: divide by the temperature, keep the
``top_k`` largest, keep the smallest set of most likely tokens whose probability
reaches ``top_p``, then draw from the softmax with a NumPy generator, so a seed
reproduces a run exactly. Work is in float64 whatever the export dtype, which
keeps half-precision logits from rounding the filtering.
"""

from __future__ import annotations

import numpy as np


def greedy(logits: np.ndarray) -> np.ndarray:
    """logits: (batch, vocab) -> (batch,) int64 arg-max."""
    return np.argmax(logits, axis=-1).astype(np.int64)


def top_k_filter(scores: np.ndarray, top_k: int) -> np.ndarray:
    """Set every score below the ``top_k``-th largest of its row to -inf (0 keeps all)."""
    if top_k <= 0 or top_k >= scores.shape[-1]:
        return scores
    kth = np.partition(scores, -top_k, axis=-1)[:, -top_k, None]
    return np.where(scores < kth, -np.inf, scores)


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


def top_p_filter(scores: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the most likely tokens until their probability reaches ``top_p`` (at least one)."""
    if top_p >= 1.0:
        return scores
    order = np.argsort(-scores, axis=-1, kind="stable")
    sorted_probs = np.take_along_axis(softmax(scores), order, axis=-1)
    # A token stays when the tokens more likely than it do not reach top_p yet.
    before = np.cumsum(sorted_probs, axis=-1) - sorted_probs
    keep_sorted = before < top_p
    keep_sorted[:, 0] = True
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    return np.where(keep, scores, -np.inf)


def sample(logits: np.ndarray, temperature: float, top_k: int, top_p: float,
           rng: np.random.Generator) -> np.ndarray:
    """logits: (batch, vocab) -> (batch,) int64 tokens drawn after temperature, top-k, top-p."""
    scores = np.asarray(logits, dtype=np.float64) / temperature
    scores = top_p_filter(top_k_filter(scores, top_k), top_p)
    probs = softmax(scores)
    cdf = np.cumsum(probs, axis=-1)
    draws = rng.random(scores.shape[0]) * cdf[:, -1]
    # The first position whose cumulative probability passes the draw; filtered tokens
    # add nothing to the sum, so they can never be picked.
    tokens = np.array([np.searchsorted(row, u, side="right") for row, u in zip(cdf, draws, strict=True)])
    # A draw rounded up to the total would land past the end: take the last allowed token.
    last_allowed = scores.shape[-1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=-1)
    return np.minimum(tokens, last_allowed).astype(np.int64)
