"""The float64 oracle against transformers run in float64.

transformers' float64 run is not float64 everywhere (its RMS norms compute in
float32), so the two agree to float32 rounding of the norms: measured about 1e-7
relative; 1e-6 is the bound. Splitting a sequence (chunks, padding) is exact
arithmetic on the same float64 numbers up to reassociation: 1e-12.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mamba_export.parity import hf_cache
from mamba_export.parity.oracle import Float64Mamba
from tests.support.tiny_models import tiny_model

NORM_ROUNDING = 1e-6
EXACT = 1e-12


def rel(a, b) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).abs().max() / b.abs().max())


def ids(batch, length, seed=0, vocab=61):
    return torch.as_tensor(np.random.default_rng(seed).integers(0, vocab, (batch, length)))


@pytest.fixture(scope="module", params=["default", "use_bias", "untied_head", "falcon_mamba"])
def pair(request):
    model = tiny_model(request.param)
    return model, copy.deepcopy(model).double()


def test_logits_match_transformers_float64(pair):
    model, model64 = pair
    tokens = ids(2, 20, seed=1)
    with torch.no_grad():
        hidden = model64.backbone(tokens).last_hidden_state
        expected = hidden @ model64.lm_head.weight.T  # the causal LM casts logits to float32
    logits, _ = Float64Mamba(model)(tokens)
    assert logits.dtype == torch.float64
    assert rel(logits, expected) < NORM_ROUNDING


def test_states_match_the_transformers_cache(pair):
    model, model64 = pair
    tokens = ids(2, 9, seed=2)
    with torch.no_grad():
        cache = hf_cache.output_cache(model64(tokens, use_cache=True))
    _, states = Float64Mamba(model)(tokens)
    for layer, (conv, ssm) in enumerate(states):
        assert conv.shape == (2, 32, 3) and ssm.shape == (2, 32, 8)
        cached_conv, cached_ssm = hf_cache.layer_states(cache, layer)
        assert rel(conv, cached_conv[:, :, 1:]) < NORM_ROUNDING
        assert rel(ssm, cached_ssm) < NORM_ROUNDING


def test_chunks_continue_exactly(pair):
    oracle = Float64Mamba(pair[0])
    tokens = ids(1, 13, seed=3)
    whole, whole_states = oracle(tokens)
    first, states = oracle(tokens[:, :1])
    second, states = oracle(tokens[:, 1:8], states=states)
    third, states = oracle(tokens[:, 8:], states=states)
    assert rel(torch.cat([first, second, third], dim=1), whole) < EXACT
    for (conv, ssm), (conv_w, ssm_w) in zip(states, whole_states, strict=True):
        assert rel(conv, conv_w) < EXACT and rel(ssm, ssm_w) < EXACT


def test_left_padding_is_neutral_without_in_proj_bias(pair):
    """Masked positions feed zeros to the conv and the scan, so padding changes nothing, unless
    in_proj has a bias: then the padding feeds that bias into the conv (transformers does too)."""
    oracle = Float64Mamba(pair[0])
    row = ids(1, 6, seed=4)
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), row], dim=1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
    out, states = oracle(padded, mask)
    alone, alone_states = oracle(row)
    assert oracle.padding_is_neutral == (pair[0].config.use_bias is False)
    if oracle.padding_is_neutral:
        assert rel(out[:, 3:], alone) < EXACT
        assert rel(states[1][1], alone_states[1][1]) < EXACT
    else:
        assert rel(out[:, 3:], alone) > 1e-6


def test_padding_semantics_match_transformers(pair):
    model, model64 = pair
    tokens = torch.cat([torch.zeros(1, 2, dtype=torch.long), ids(1, 5, seed=7)], dim=1)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        expected = model64.backbone(tokens, attention_mask=mask).last_hidden_state @ model64.lm_head.weight.T
    out, _ = Float64Mamba(model)(tokens, mask)
    assert rel(out[:, 2:], expected[:, 2:]) < NORM_ROUNDING


def test_base_model_returns_the_last_hidden_state():
    model = tiny_model(base=True)
    tokens = ids(1, 5, seed=5)
    with torch.no_grad():
        expected = copy.deepcopy(model).double()(tokens).last_hidden_state
    hidden, _ = Float64Mamba(model, with_head=False)(tokens)
    assert hidden.shape == (1, 5, 16) and rel(hidden, expected) < NORM_ROUNDING


def test_float32_model_is_further_from_the_oracle_than_rounding():
    """The oracle is a real float64 reference: float32 is measurably off, float64 is not."""
    model = tiny_model()
    tokens = ids(1, 40, seed=6)
    logits, _ = Float64Mamba(model)(tokens)
    with torch.no_grad():
        float32 = model(tokens).logits
    assert 1e-9 < rel(float32, logits) < 1e-5
