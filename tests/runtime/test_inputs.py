"""Argument checks of the model call and of generate()."""

from __future__ import annotations

import numpy as np
import pytest

from mamba_export.errors import InputShapeError
from mamba_export.runtime.inputs import check_attention_mask, check_input_ids, check_left_padded


def test_input_ids_become_contiguous_int64():
    ids = np.arange(12, dtype=np.int16).reshape(3, 4).T
    checked = check_input_ids(ids, vocab_size=20)
    assert checked.dtype == np.int64 and checked.flags.c_contiguous
    np.testing.assert_array_equal(checked, ids)


def test_input_ids_without_vocab_bound():
    assert check_input_ids([[10**6]], vocab_size=None)[0, 0] == 10**6


def test_mask_defaults_to_ones_and_accepts_bools():
    np.testing.assert_array_equal(check_attention_mask(None, (2, 3)), np.ones((2, 3)))
    mask = check_attention_mask(np.array([[False, True]]), (1, 2))
    assert mask.dtype == np.int64 and mask.tolist() == [[0, 1]]


def test_not_an_array():
    with pytest.raises(InputShapeError, match="input_ids"):
        check_input_ids([[1, 2], [3]], vocab_size=10)


def test_left_padding_is_accepted():
    check_left_padded(np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1]]))


@pytest.mark.parametrize("mask, match", [
    ([[1, 0, 1]], "row 0 has padding after a token"),
    ([[1, 1, 1], [1, 1, 0]], "row 1 has padding after a token"),
    ([[1, 1], [0, 0]], "row 1 is all zeros"),
])
def test_left_padding_violations(mask, match):
    with pytest.raises(InputShapeError, match=match):
        check_left_padded(np.array(mask))
