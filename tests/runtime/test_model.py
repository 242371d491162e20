"""ORTMambaForCausalLM / ORTMambaModel on tiny exports, both backends, against PyTorch.

Tolerances: the export and PyTorch both compute in float32 on a 2-layer model
with prompts of at most 12 tokens; their outputs differ by a few float32
roundings (measured about 1e-7 relative), so 1e-5 relative leaves a wide margin
while a missing mask or a state not carried is off by far more than that.
Chunked == one pass and padded row == row alone run the same graph on the same
numbers in a different split, so they get the same bound.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mamba_export import graph_io
from mamba_export.errors import InputShapeError
from mamba_export.runtime.model import ORTMambaForCausalLM, ORTMambaModel
from mamba_export.runtime.states import MambaStates

RTOL = 1e-5
BACKENDS = ["standard", "custom"]


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def tokens(batch, length, seed=0, vocab=61):
    return np.random.default_rng(seed).integers(0, vocab, (batch, length))


@pytest.fixture(scope="module", params=BACKENDS)
def model(request, exported):
    return ORTMambaForCausalLM.from_pretrained(exported(request.param))


def test_call_shapes_dtypes_and_states(model):
    info = model.info
    out = model(tokens(2, 9))
    assert out.logits.shape == (2, 9, info["vocab_size"]) and out.logits.dtype == np.float32
    assert isinstance(out.states, MambaStates) and len(out.states) == info["num_layers"]
    for conv, ssm in out.states:
        assert conv.shape == (2, info["intermediate_size"], info["conv_kernel"] - 1)
        assert ssm.shape == (2, info["intermediate_size"], info["state_size"])
        assert conv.dtype == np.float32 and ssm.dtype == np.float32
        assert np.abs(ssm).max() > 0  # the prompt moved the state away from zero


def test_logits_match_pytorch(model, reference_model):
    ids = tokens(2, 12, seed=1)
    expected = reference_model(torch.as_tensor(ids)).logits.detach().numpy()
    assert rel(model(ids).logits, expected) < RTOL


def test_zero_states_equal_no_states(model):
    ids = tokens(1, 5, seed=2)
    np.testing.assert_array_equal(model(ids).logits, model(ids, states=model.zero_states(1)).logits)


def test_chunked_prompt_equals_one_pass(model):
    ids = tokens(2, 11, seed=3)
    whole = model(ids)
    first = model(ids[:, :1])
    second = model(ids[:, 1:6], states=first.states)
    third = model(ids[:, 6:], states=second.states)
    chunked = np.concatenate([first.logits, second.logits, third.logits], axis=1)
    assert rel(chunked, whole.logits) < RTOL
    for (conv_a, ssm_a), (conv_b, ssm_b) in zip(third.states, whole.states, strict=True):
        assert rel(conv_a, conv_b) < RTOL and rel(ssm_a, ssm_b) < RTOL


def test_states_accept_pairs(model):
    ids = tokens(1, 6, seed=4)
    first = model(ids[:, :3])
    pairs = [(conv, ssm) for conv, ssm in first.states]
    np.testing.assert_array_equal(model(ids[:, 3:], states=pairs).logits,
                                  model(ids[:, 3:], states=first.states).logits)


def test_left_padded_rows_equal_rows_alone(model):
    rows = [tokens(1, 10, seed=5)[0], tokens(1, 4, seed=6)[0], tokens(1, 7, seed=7)[0]]
    ids = np.zeros((3, 10), np.int64)
    mask = np.zeros((3, 10), np.int64)
    for i, row in enumerate(rows):
        ids[i, 10 - len(row):], mask[i, 10 - len(row):] = row, 1
    batch = model(ids, attention_mask=mask)
    for i, row in enumerate(rows):
        alone = model(row[None])
        assert rel(batch.logits[i, 10 - len(row):], alone.logits[0]) < RTOL
        for (conv_b, ssm_b), (conv_a, ssm_a) in zip(batch.states, alone.states, strict=True):
            assert rel(conv_b[i], conv_a[0]) < RTOL and rel(ssm_b[i], ssm_a[0]) < RTOL


def test_accepts_lists_int32_and_torch(model):
    ids = tokens(1, 4, seed=8)
    expected = model(ids).logits
    np.testing.assert_array_equal(model(ids.tolist()).logits, expected)
    np.testing.assert_array_equal(model(ids.astype(np.int32)).logits, expected)
    np.testing.assert_array_equal(model(torch.as_tensor(ids)).logits, expected)


@pytest.mark.parametrize("bad, match", [
    (np.zeros(5, np.int64), r"input_ids has shape \(5,\).*input_ids\[None\]"),
    (np.zeros((1, 2, 3), np.int64), r"expected \(batch, sequence\)"),
    (np.zeros((1, 0), np.int64), "at least 1"),
    (np.zeros((1, 3), np.float32), "dtype float32, expected an integer"),
    (np.array([[1, 61]]), r"token 61, expected ids in \[0, 61\)"),
    (np.array([[-1, 2]]), "token -1"),
])
def test_bad_input_ids(model, bad, match):
    with pytest.raises(InputShapeError, match=match):
        model(bad)


def test_bad_attention_mask(model):
    ids = tokens(2, 4)
    with pytest.raises(InputShapeError, match=r"attention_mask has shape \(2, 3\), expected \(2, 4\)"):
        model(ids, attention_mask=np.ones((2, 3), np.int64))
    with pytest.raises(InputShapeError, match="only 0"):
        model(ids, attention_mask=np.full((2, 4), 2))


def test_bad_states(model):
    ids = tokens(2, 3)
    good = model(ids).states
    with pytest.raises(InputShapeError, match="states has 1 layers, the model has 2"):
        model(ids, states=[good[0]])
    with pytest.raises(InputShapeError, match=r"past\.0\.conv_state is \(1, 32, 3\), expected \(2, 32, 3\)"):
        model(ids, states=good.select(slice(0, 1)))
    with pytest.raises(InputShapeError, match="sequence of"):
        model(ids, states=3)
    wrong_dtype = [(conv.astype(np.int32), ssm) for conv, ssm in good]
    with pytest.raises(InputShapeError, match="past.0.conv_state has dtype int32"):
        model(ids, states=wrong_dtype)


def test_float64_states_are_converted(model):
    ids = tokens(1, 4, seed=9)
    states = model(ids[:, :2]).states
    as_f64 = [(conv.astype(np.float64), ssm.astype(np.float64)) for conv, ssm in states]
    np.testing.assert_array_equal(model(ids[:, 2:], states=as_f64).logits,
                                  model(ids[:, 2:], states=states).logits)


def test_logits_last_export(exported):
    full = ORTMambaForCausalLM.from_pretrained(exported("standard"))
    last = ORTMambaForCausalLM.from_pretrained(exported("standard", logits="last"))
    ids = tokens(2, 7, seed=10)
    out = last(ids)
    assert out.logits.shape == (2, 1, 61)
    assert rel(out.logits[:, 0], full(ids).logits[:, -1]) < RTOL


def test_base_model_export(exported):
    from tests.support.tiny_models import tiny_model

    model = ORTMambaModel.from_pretrained(exported("standard", base=True))
    ids = tokens(2, 6, seed=11)
    out = model(ids)
    expected = tiny_model(base=True)(torch.as_tensor(ids)).last_hidden_state.detach().numpy()
    assert out.last_hidden_state.shape == (2, 6, 16)
    assert rel(out.last_hidden_state, expected) < RTOL
    assert not hasattr(model, "generate")
    assert graph_io.LAST_HIDDEN_STATE == model.runner.head_output


def test_fp16_export_runs(exported):
    model = ORTMambaForCausalLM.from_pretrained(exported("standard", dtype="fp16"))
    out = model(tokens(1, 5, seed=12))
    assert out.logits.dtype == np.float16
    assert out.states[0][0].dtype == np.float16 and out.states[0][1].dtype == np.float32
