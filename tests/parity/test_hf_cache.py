"""transformers' cache keyword and states, found the same way on every 5.x release."""

import pytest
import torch

from mamba_export.errors import UnsupportedModelError
from mamba_export.parity import hf_cache
from tests.support.tiny_models import tiny_config, tiny_model


def test_keyword_is_one_the_forward_really_takes():
    model = tiny_model("default")
    import inspect

    name = hf_cache.cache_keyword(model)
    assert name in inspect.signature(model.forward).parameters


def test_a_forward_without_a_cache_keyword_is_refused():
    class NoCache(torch.nn.Module):
        def forward(self, input_ids, **kwargs):
            return input_ids

    with pytest.raises(UnsupportedModelError, match="NoCache"):
        hf_cache.cache_keyword(NoCache())


@torch.no_grad()
def test_layer_states_have_the_cache_shapes():
    model = tiny_model("default")
    config = tiny_config("default")
    out = model(input_ids=torch.tensor([[1, 2, 3]]), use_cache=True)
    cache = hf_cache.output_cache(out)
    assert cache is not None
    conv, ssm = hf_cache.layer_states(cache, 1)
    inner = config.intermediate_size
    assert tuple(conv.shape) == (1, inner, config.conv_kernel)
    assert tuple(ssm.shape) == (1, inner, config.state_size)


@torch.no_grad()
def test_decoding_through_the_cache_matches_a_full_forward():
    model = tiny_model("untied_head", seed=1)
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    full = model(input_ids=ids).logits[:, -1]
    cache = hf_cache.output_cache(model(input_ids=ids[:, :4], use_cache=True))
    step = model(input_ids=ids[:, 4:], use_cache=True, **{hf_cache.cache_keyword(model): cache}).logits[:, -1]
    torch.testing.assert_close(step, full, rtol=1e-4, atol=1e-5)
