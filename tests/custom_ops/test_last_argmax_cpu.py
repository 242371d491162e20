"""The ORT CPU kernel of LastArgMax against the reference, and its bad inputs.

The check is exact (argmax_cases.py): ties take the first index, a row with a NaN gives its
first NaN, +-inf and signed zeros compare as NumPy compares them. Cases reach every part of
the kernel: rows of V below, at and above its 256-value conversion chunk and not a multiple
of anything, one position and several (earlier positions hold decoys that win if read), no
sequences, several tasks on the session's threads. Bad inputs get exactly the message of the
Python contract's check_inputs(), and the session keeps working afterwards.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import shape_edits
from argmax_cases import DTYPES, ROWS, check_parity, make_logits, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, NotImplemented
from shape_edits import assert_rejected_as_the_contract_says

from mamba_export.ops.last_argmax import check_inputs
from tests.support.one_argmax_node import last_argmax_model

contract_message = partial(shape_edits.contract_message, check_inputs)

SHAPES = {
    "decode_b1": dict(batch=1, positions=1, vocab=50280),
    "decode_b8": dict(batch=8, positions=1, vocab=50280),
    "prefill": dict(batch=2, positions=7, vocab=1000),
    "vocab_1": dict(batch=3, positions=2, vocab=1),
    "vocab_255": dict(batch=2, positions=3, vocab=255),
    "vocab_256": dict(batch=2, positions=1, vocab=256),
    "vocab_257": dict(batch=2, positions=2, vocab=257),
    "vocab_4099": dict(batch=5, positions=2, vocab=4099),
    "many_rows": dict(batch=70, positions=1, vocab=37),
}


def on_cpu(make_session, io_dtype, threads=1):
    session = make_session(last_argmax_model(io_dtype), threads)
    return lambda logits: run(session, logits)


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("rows", sorted(ROWS))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_matches_reference(make_session, shape, rows, io_dtype):
    check_parity(on_cpu(make_session, io_dtype, threads=2), rows=rows, io_dtype=io_dtype, **SHAPES[shape])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(io_dtype=st.sampled_from(DTYPES), rows=st.sampled_from(sorted(ROWS)), batch=st.integers(1, 9),
       positions=st.integers(1, 4), vocab=st.integers(1, 600), seed=st.integers(0, 2**31 - 1))
def test_fuzzed_against_reference(make_session, io_dtype, rows, batch, positions, vocab, seed):
    check_parity(on_cpu(make_session, io_dtype), rows=rows, io_dtype=io_dtype, batch=batch, positions=positions,
                 vocab=vocab, seed=seed)


def test_an_earlier_position_would_win():
    """The decoys do what the cases rely on: reading any position but the last gives another index."""
    logits = make_logits(batch=4, positions=3, vocab=100, rows="ties")
    last = logits[:, -1].argmax(-1)
    for p in range(2):
        assert (logits[:, p].argmax(-1) != last).all()


@pytest.mark.parametrize("io_dtype", DTYPES)
def test_no_sequences_give_an_empty_output(make_session, io_dtype):
    tokens = run(make_session(last_argmax_model(io_dtype)), make_logits(batch=0, positions=2, vocab=9,
                                                                        io_dtype=io_dtype))
    assert tokens.shape == (0, 1) and tokens.dtype == np.int64


def test_the_output_shape_without_a_bound_buffer(make_session):
    """Run plainly, ORT allocates the output from the kernel's shape: (B, 1) int64."""
    session = make_session(last_argmax_model("float16"))
    logits = make_logits(batch=3, positions=2, vocab=11, io_dtype="float16")
    (tokens,) = session.run(None, {"logits": logits})
    assert tokens.shape == (3, 1) and tokens.dtype == np.int64
    np.testing.assert_array_equal(tokens, logits[:, -1].astype(np.float32).argmax(-1)[:, None])


BAD_SHAPES = {
    "rank 2": (3, 9),
    "rank 4": (2, 1, 1, 9),
    "rank 0": (),
    "no positions": (2, 0, 9),
    "no vocab": (2, 3, 0),
    "no positions and no sequences": (0, 0, 9),
}


def test_bad_shapes_are_rejected_by_the_contracts_message_then_a_good_call_works(make_session):
    session = make_session(last_argmax_model(shaped=False), 2)
    for label, shape in BAD_SHAPES.items():
        feeds = {"logits": np.zeros(shape, np.float32)}
        expected = contract_message(feeds)
        assert expected is not None and "logits" in expected, label
        assert_rejected_as_the_contract_says(session, feeds, expected, label)
    check_parity(lambda logits: run(session, logits), batch=3, positions=2, vocab=300)


@pytest.mark.parametrize("dtype", ["float64", "int64", "int32"])
def test_other_dtypes_are_refused_at_load(make_session, dtype):
    """No kernel is registered for them: ONNX Runtime refuses the graph when it loads it, naming the op."""
    with pytest.raises((InvalidGraph, Fail, NotImplemented), match="LastArgMax"):
        make_session(last_argmax_model(dtype))


@pytest.mark.parametrize("dtype", ["float64", "int64"])
def test_the_contract_names_a_wrong_dtype(dtype):
    with pytest.raises(Exception, match=rf"LastArgMax: logits is {dtype}, expected one of float32, float16, bfloat16"):
        check_inputs({"logits": (1, 1, 4)}, {"logits": dtype})
