"""Checking what a caller passes to an exported model before ONNX Runtime sees it.

ONNX Runtime's own messages for a wrong rank or dtype name graph-internal nodes;
these checks name the argument, the expected and the actual value instead, and
accept what a caller naturally has at hand (lists, any integer dtype, CPU torch
tensors) by converting it to the int64 arrays the graph takes.
"""

from __future__ import annotations

import math

import numpy as np

from mamba_export.errors import InputShapeError


def _as_array(name: str, value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as error:
        raise InputShapeError(f"{name} must be an integer array (batch, sequence), got "
                              f"{type(value).__name__} ({error})") from error


def _as_int64(name: str, array: np.ndarray) -> np.ndarray:
    if array.dtype == np.bool_:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputShapeError(f"{name} has dtype {array.dtype}, expected an integer dtype (int64)")
    return np.ascontiguousarray(array, dtype=np.int64)


def check_input_ids(input_ids, vocab_size: int | None) -> np.ndarray:
    """input_ids: (batch, sequence) token ids in [0, vocab_size); returned as int64."""
    array = _as_array("input_ids", input_ids)
    if array.ndim != 2:
        hint = "; add a batch dimension, e.g. input_ids[None]" if array.ndim == 1 else ""
        raise InputShapeError(f"input_ids has shape {array.shape}, expected (batch, sequence){hint}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise InputShapeError(f"input_ids has shape {array.shape}; batch and sequence must be at least 1")
    array = _as_int64("input_ids", array)
    if vocab_size is not None:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise InputShapeError(f"input_ids holds token {bad}, expected ids in [0, {vocab_size})")
    return array


def check_attention_mask(attention_mask, shape: tuple) -> np.ndarray:
    """attention_mask: (batch, sequence) of 0/1 matching input_ids; ones when None."""
    if attention_mask is None:
        return np.ones(shape, np.int64)
    array = _as_array("attention_mask", attention_mask)
    if array.shape != tuple(shape):
        raise InputShapeError(f"attention_mask has shape {array.shape}, expected {tuple(shape)} "
                              "to match input_ids")
    array = _as_int64("attention_mask", array)
    if not np.isin(array, (0, 1)).all():
        raise InputShapeError("attention_mask must hold only 0 (padding) and 1 (token)")
    return array


def check_left_padded(attention_mask: np.ndarray) -> None:
    """Generation needs padding on the left: a 0 after a 1 would feed padding into the state."""
    if not attention_mask.any(axis=1).all():
        row = int(np.flatnonzero(~attention_mask.any(axis=1))[0])
        raise InputShapeError(f"attention_mask row {row} is all zeros; every prompt needs a token")
    # Left padding means each row is non-decreasing: zeros, then ones.
    bad_rows = np.flatnonzero((np.diff(attention_mask, axis=1) < 0).any(axis=1))
    if bad_rows.size:
        raise InputShapeError(f"attention_mask row {int(bad_rows[0])} has padding after a token; "
                              "generate() needs left padding (pad at the start of each row)")


def bucket_step(batch: int, bucket: int) -> int:
    """The length step that makes batch x length a multiple of ``bucket`` with the least padding.

    A matrix product's shape on CUDA is (batch x length, width), so what has to repeat is the
    product of the two: one row needs a multiple of ``bucket``, 128 rows of a 64-token bucket
    none at all."""
    return bucket // math.gcd(max(batch, 1), bucket)


def pad_left_to_bucket(input_ids: np.ndarray, attention_mask: np.ndarray, bucket: int,
                       pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad (batch, sequence) ids and mask with the fewest positions that make batch x
    sequence a multiple of ``bucket`` (:func:`bucket_step`).

    The new positions are masked (0) and hold ``pad_id``; a masked position leaves the states
    at zero, so a left-padded prompt ends in the same states as the prompt alone."""
    batch, length = input_ids.shape
    step = bucket_step(batch, bucket)
    padded = -(-length // step) * step
    if padded == length:
        return input_ids, attention_mask
    extra = padded - length
    ids = np.concatenate([np.full((batch, extra), pad_id, np.int64), input_ids], axis=1)
    mask = np.concatenate([np.zeros((batch, extra), np.int64), attention_mask], axis=1)
    return ids, mask
