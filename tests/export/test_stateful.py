"""The traced module, run eagerly: same numbers as transformers, states that carry a sequence on.

Both sides run in float64 (the oracle precision), so any difference beyond float64
rounding is a wiring mistake. transformers computes A, D and the time-step bias
from float32 copies and returns float32 logits, so comparisons of logits allow
float32 rounding (1e-6 relative); state and hidden comparisons are float64-tight.
"""

from __future__ import annotations

import pytest
import torch

from mamba_export.export.architectures import architecture_for_model
from mamba_export.export.patching import routed_through_op
from mamba_export.export.stateful import StatefulModel
from tests.support.tiny_models import TINY_CONFIGS, tiny_model

FLOAT32_LOGITS = 1e-6
FLOAT64 = 1e-12


def relative_error(actual, expected) -> float:
    return ((actual.double() - expected.double()).abs().max() / expected.double().abs().max()).item()


def _wrapped(name, base=False, logits="all"):
    model = tiny_model(name, base=base).double()
    return model, StatefulModel(model, architecture_for_model(model), logits)


def _tokens(model, batch, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (batch, length), generator=g)


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_matches_transformers_for_every_tiny_config(name):
    model, wrapper = _wrapped(name)
    ids = _tokens(model, 2, 9)
    with torch.no_grad():
        expected = model(ids, use_cache=False).logits
        with routed_through_op(model):
            logits, *states = wrapper(ids, torch.ones_like(ids), *wrapper.zero_states(2))
    assert relative_error(logits, expected) < FLOAT32_LOGITS
    assert len(states) == 2 * model.config.num_hidden_layers


def test_base_model_gives_the_last_hidden_state():
    model, wrapper = _wrapped("default", base=True)
    ids = _tokens(model, 2, 6)
    with torch.no_grad():
        expected = model(ids, use_cache=False).last_hidden_state
        with routed_through_op(model):
            hidden = wrapper(ids, torch.ones_like(ids), *wrapper.zero_states(2))[0]
    assert hidden.shape == (2, 6, model.config.hidden_size)
    assert relative_error(hidden, expected) < FLOAT64


def test_last_logits_only():
    model, wrapper = _wrapped("default", logits="last")
    ids = _tokens(model, 2, 6)
    with torch.no_grad():
        expected = model(ids, use_cache=False).logits[:, -1:]
        with routed_through_op(model):
            logits = wrapper(ids, torch.ones_like(ids), *wrapper.zero_states(2))[0]
    assert logits.shape == (2, 1, model.config.vocab_size)
    assert relative_error(logits, expected) < FLOAT32_LOGITS


@pytest.mark.parametrize("split", [[1] * 10, [2, 8], [3, 1, 6]])
def test_chunks_carrying_states_equal_one_pass(split):
    model, wrapper = _wrapped("three_layers")
    ids = _tokens(model, 2, sum(split))
    mask = torch.ones_like(ids)
    with torch.no_grad(), routed_through_op(model):
        whole, *whole_states = wrapper(ids, mask, *wrapper.zero_states(2))
        states, pieces, start = wrapper.zero_states(2), [], 0
        for size in split:
            logits, *states = wrapper(ids[:, start:start + size], mask[:, start:start + size], *states)
            pieces.append(logits)
            start += size
    assert relative_error(torch.cat(pieces, dim=1), whole) < FLOAT64
    for got, expected in zip(states, whole_states, strict=True):
        assert relative_error(got, expected) < FLOAT64


def _left_padded_batch(model):
    short, long = _tokens(model, 1, 4, seed=1), _tokens(model, 1, 7, seed=2)
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), short], dim=1)
    mask = torch.cat([torch.tensor([[0, 0, 0, 1, 1, 1, 1]]), torch.ones(1, 7, dtype=torch.long)])
    return short, long, torch.cat([padded, long]), mask


@pytest.mark.parametrize("name", ["default", "no_conv_bias", "three_layers"])
def test_left_padded_rows_equal_rows_alone(name):
    model, wrapper = _wrapped(name)
    short, long, ids, mask = _left_padded_batch(model)
    with torch.no_grad(), routed_through_op(model):
        batch_logits, *batch_states = wrapper(ids, mask, *wrapper.zero_states(2))
        for row, tokens in enumerate([short, long]):
            alone, *alone_states = wrapper(tokens, torch.ones_like(tokens), *wrapper.zero_states(1))
            assert relative_error(batch_logits[row:row + 1, -tokens.shape[1]:], alone) < FLOAT64
            for got, expected in zip(batch_states, alone_states, strict=True):
                assert relative_error(got[row:row + 1], expected) < FLOAT64


def test_zero_states_follow_graph_io():
    model, wrapper = _wrapped("state_4")
    states = wrapper.zero_states(3)
    config = model.config
    assert states[0].shape == (3, config.intermediate_size, config.conv_kernel - 1)
    assert states[0].dtype == torch.float64  # the model dtype
    assert states[1].shape == (3, config.intermediate_size, 4)
    assert states[1].dtype == torch.float32


def test_left_padding_with_projection_bias_follows_transformers():
    # transformers masks the mixer input before in_proj, so with use_bias the bias of the
    # padded positions reaches the conv: the row is not the row alone, and the export
    # reproduces transformers rather than correcting it.
    model, wrapper = _wrapped("use_bias")
    _, _, ids, mask = _left_padded_batch(model)
    with torch.no_grad():
        expected = model(ids, attention_mask=mask, use_cache=False).logits
        with routed_through_op(model):
            logits = wrapper(ids, mask, *wrapper.zero_states(2))[0]
    assert relative_error(logits, expected) < FLOAT32_LOGITS
