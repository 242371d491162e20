"""generate() on an export with next_tokens (--next-tokens): the device decoder's ring of ids rows.

Each decode binding reads one row of the ring and writes the graph's greedy choice into the next,
so no token head runs; the tokens must be the host decoder's, greedy and sampled, with CUDA
graph bookkeeping on and off, and with finished rows overwritten (CPU OrtValues here; the
custom backend, as CUDA exports are).
"""

from __future__ import annotations

import numpy as np
import pytest

from mamba_export.runtime.generation import GenerationSettings, HostDecoder, generate
from mamba_export.runtime.io_binding import Device, DeviceDecoder
from mamba_export.runtime.model import ORTMambaForCausalLM
from tests.support.prompts import tokens


@pytest.fixture(scope="module", params=["all", "last"])
def model(request, exported, export_tiny):
    exported("custom")  # the custom-op library, or a skip that says how to build it
    return ORTMambaForCausalLM.from_pretrained(export_tiny(backend="custom", logits=request.param, next_tokens=True))


def _settings(**kwargs):
    return GenerationSettings.create(max_new_tokens=9, eos_token_id=[], **kwargs)


def test_generate_takes_the_graphs_tokens_and_matches_the_host(model):
    ids = tokens(3, 6, seed=10)
    mask = np.ones_like(ids)
    mask[1, :2] = 0
    cache = {}
    for settings in (_settings(), _settings(do_sample=True, top_k=8, seed=5)):
        expected = generate(HostDecoder(model), ids, mask, settings)
        for use_graph in (False, True):
            decoder = DeviceDecoder(model, cache, Device("cpu"), use_graph=use_graph)
            assert decoder.in_graph_tokens
            np.testing.assert_array_equal(generate(decoder, ids, mask, settings), expected)
    buffers = cache[3]
    # The CPU provider reads after every step (read_tokens_every 1): a ring of two rows, one per binding.
    assert buffers.in_graph_tokens and buffers.ring.slots == buffers.slots == 2 and buffers.ids == ()


def test_no_token_head_runs_for_greedy_steps(model, monkeypatch):
    ids = tokens(2, 5, seed=3)
    expected = generate(HostDecoder(model), ids, np.ones_like(ids), _settings())
    monkeypatch.setattr(model.token_head, "run", lambda binding: pytest.fail("the token head ran"))
    monkeypatch.setattr(model.token_head, "greedy", lambda *args: pytest.fail("the token head ran"))
    out = generate(DeviceDecoder(model, {}, Device("cpu"), use_graph=True), ids, np.ones_like(ids), _settings())
    np.testing.assert_array_equal(out, expected)


def test_finished_rows_overwrite_the_graphs_tokens(model):
    ids = tokens(2, 4, seed=7)
    free = generate(HostDecoder(model), ids, np.ones_like(ids), _settings())
    settings = GenerationSettings.create(max_new_tokens=9, eos_token_id=int(free[0, 4 + 2]), pad_token_id=60)
    np.testing.assert_array_equal(generate(DeviceDecoder(model, {}, Device("cpu")), ids, np.ones_like(ids), settings),
                                  generate(HostDecoder(model), ids, np.ones_like(ids), settings))


def test_the_head_path_still_serves_such_an_export(model):
    """A caller that picks its tokens from the logits (the scheduler) gets them written to a spare buffer."""
    ids = tokens(2, 5, seed=4)
    decoder = DeviceDecoder(model, {}, Device("cpu"), use_graph=True, in_graph_tokens=False)
    np.testing.assert_array_equal(generate(decoder, ids, np.ones_like(ids), _settings()),
                                  generate(HostDecoder(model), ids, np.ones_like(ids), _settings()))
    assert decoder.cache[2].ids[0] is decoder.cache[2].ids[1]


def test_an_export_without_them_cannot_be_asked_for_them(exported):
    plain = ORTMambaForCausalLM.from_pretrained(exported("custom"))
    assert not plain.folder.has_next_tokens
    with pytest.raises(ValueError, match="has no next_tokens output"):
        DeviceDecoder(plain, {}, Device("cpu"), in_graph_tokens=True)
