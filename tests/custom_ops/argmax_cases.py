"""Inputs, the oracle and the ONNX Runtime runner shared by the LastArgMax tests.

The oracle is mamba_export.ops.reference.last_argmax (NumPy's argmax in float64 on the very
values the kernel received: half-precision inputs rounded first), and the check is exact:
an argmax has one right answer, ties and NaNs included.

Every case writes its own row into the last position and a decoy into each earlier one: the
decoy's largest value sits just after the last row's answer, so a kernel that read the wrong
position gives another index (for any V > 1).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from mamba_export.ops.reference import last_argmax as reference_argmax
from tests.custom_ops.scan_cases import NUMPY_DTYPES, run_into

DTYPES = tuple(NUMPY_DTYPES)


def _random(batch, vocab, rng, scale=1.0):
    return scale * rng.standard_normal((batch, vocab))


def _ties(batch, vocab, rng):
    """Integers from a small range: each row's maximum is held several times."""
    return rng.integers(-3, 4, (batch, vocab)).astype(np.float64)


def _all_equal(batch, vocab, rng):
    return np.full((batch, vocab), 1.5)


def _nan_at(where):
    def rows(batch, vocab, rng):
        values = rng.standard_normal((batch, vocab))
        for b in range(batch):
            first = {"first": 0, "middle": vocab // 2, "last": vocab - 1}[where]
            values[b, first] = np.nan
            if first + 3 < vocab:
                values[b, first + 3] = np.nan  # a later NaN must not win
            values[b, (first + 1) % vocab] = np.inf
        return values
    return rows


def _infinities(batch, vocab, rng):
    """+inf twice (the first wins) among -inf and numbers; one row all -inf (index 0)."""
    values = rng.standard_normal((batch, vocab))
    values[:, ::3] = -np.inf
    values[:, vocab // 3] = np.inf
    values[:, vocab - 1] = np.inf
    values[0] = -np.inf
    return values


def _signed_zeros(batch, vocab, rng):
    """-0.0 and +0.0 compare equal: the first zero wins, whatever its sign."""
    values = -np.abs(rng.standard_normal((batch, vocab))) - 1.0
    values[:, 1::2] = -0.0
    values[:, 2::2] = 0.0
    return values


def _max_at_the_end(batch, vocab, rng):
    """The largest value at the last index (a tail that no unrolled step covers)."""
    values = rng.standard_normal((batch, vocab))
    values[:, -1] = 100.0
    return values


ROWS = {
    "random": _random,
    "ties": _ties,
    "all_equal": _all_equal,
    "nan_first": _nan_at("first"),
    "nan_middle": _nan_at("middle"),
    "nan_last": _nan_at("last"),
    "infinities": _infinities,
    "signed_zeros": _signed_zeros,
    "max_at_the_end": _max_at_the_end,
}


def make_logits(batch=2, positions=1, vocab=50, rows="random", io_dtype="float32", seed=0) -> np.ndarray:
    """(batch, positions, vocab) logits in io_dtype: ``rows`` at the last position, decoys before it."""
    rng = np.random.default_rng(seed)
    last = ROWS[rows](batch, vocab, rng)
    logits = np.empty((batch, positions, vocab))
    logits[:, -1] = last
    for p in range(positions - 1):
        decoy = rng.standard_normal((batch, vocab))
        decoy[np.arange(batch), (np.argmax(last, axis=-1) + 1) % vocab] = 1e4
        logits[:, p] = decoy
    return logits.astype(NUMPY_DTYPES[io_dtype])


def check_parity(compute, **case) -> np.ndarray:
    """Run ``compute(logits) -> tokens`` on one case and hold it to the oracle exactly; returns tokens."""
    logits = make_logits(**case)
    tokens = np.asarray(compute(logits))
    expected = reference_argmax(logits)
    assert tokens.dtype == np.int64, f"tokens are {tokens.dtype}, expected int64"
    assert tokens.shape == expected.shape == (logits.shape[0], 1), tokens.shape
    np.testing.assert_array_equal(tokens, expected, err_msg=f"{case}")
    return tokens


def run(session: ort.InferenceSession, logits: np.ndarray) -> np.ndarray:
    """Run a one-node LastArgMax session on host memory -> tokens (batch, 1) int64.

    The input is bound as an OrtValue because onnxruntime's Python API cannot take bfloat16
    numpy arrays directly; the output buffer starts at -1, an index no row has."""
    tokens = np.full((logits.shape[0], 1), -1, dtype=np.int64)
    run_into(session, {"logits": logits}, {"tokens": tokens})
    return tokens
