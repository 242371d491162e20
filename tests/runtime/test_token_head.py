"""The token head (runtime/token_head.py) against NumPy, on the CPU provider."""

from __future__ import annotations

import numpy as np
import pytest

from mamba_export.runtime.dtypes import to_ort_value
from mamba_export.runtime.token_head import TokenHead


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("sequence", [1, 5])
def test_greedy_and_last_logits_match_numpy(dtype, sequence):
    logits = np.random.default_rng(sequence).normal(size=(3, sequence, 97)).astype(dtype)
    head = TokenHead(np.dtype(dtype), ["CPUExecutionProvider"])
    tokens = to_ort_value(np.full((3, 1), -1, np.int64))
    head.greedy(to_ort_value(logits), tokens)
    last = logits[:, -1, :].astype(np.float32)
    np.testing.assert_array_equal(tokens.numpy()[:, 0], last.argmax(axis=1))
    np.testing.assert_array_equal(head.last_logits(to_ort_value(logits)), last)


def test_ties_go_to_the_first_index_as_in_numpy():
    logits = np.zeros((2, 1, 8), np.float32)
    logits[0, 0, [2, 5]] = 1.0
    tokens = to_ort_value(np.zeros((2, 1), np.int64))
    TokenHead(np.dtype(np.float32), ["CPUExecutionProvider"]).greedy(to_ort_value(logits), tokens)
    assert tokens.numpy()[:, 0].tolist() == [2, 0]
