"""Random prompts for the tiny test models (vocab 61): plain batches and left-padded ones."""

from __future__ import annotations

import numpy as np


def tokens(batch, length, seed=0, vocab=61):
    """(batch, length) random token ids."""
    return np.random.default_rng(seed).integers(0, vocab, (batch, length))


def left_padded_batch(batch: int, seed: int, longest: int = 9):
    """(ids, mask, prompts): rows of lengths 1..longest, left-padded with token 0."""
    rng = np.random.default_rng(seed)
    prompts = [rng.integers(1, 61, int(rng.integers(1, longest + 1))) for _ in range(batch)]
    ids = np.zeros((batch, longest), np.int64)
    mask = np.zeros((batch, longest), np.int64)
    for row, prompt in enumerate(prompts):
        ids[row, longest - len(prompt):] = prompt
        mask[row, longest - len(prompt):] = 1
    return ids, mask, prompts
