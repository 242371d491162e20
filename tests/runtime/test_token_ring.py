"""Greedy tokens read from the device in groups (runtime/token_ring.py, generation._read_in_groups).

On CPU OrtValues with the tiny custom export that chooses its own tokens: the ring's rows are
bound by address and hold each step's tokens in order; generate() that reads every 2, 3 or 8
steps gives the tokens, streaming and end-of-text handling of reading after every step, never
reads between steps, runs at most read_every - 1 steps past the end, and falls back to a read
after every step when it samples. The option's defaults and its bad values.
"""

from __future__ import annotations

import numpy as np
import pytest

from mamba_export.errors import MambaExportError
from mamba_export.options import DEFAULT_READ_TOKENS_EVERY, RuntimeOptions
from mamba_export.runtime.generation import GenerationSettings, HostDecoder, generate
from mamba_export.runtime.io_binding import Device, DeviceDecoder, ring_slots
from mamba_export.runtime.model import ORTMambaForCausalLM
from mamba_export.runtime.token_ring import TokenRing
from tests.support.prompts import tokens


@pytest.fixture(scope="module")
def model(exported, export_tiny):
    exported("custom")  # the custom-op library, or a skip that says how to build it
    return ORTMambaForCausalLM.from_pretrained(export_tiny(backend="custom", logits="last", next_tokens=True))


def _decoder(model, every: int, cache: dict | None = None) -> DeviceDecoder:
    return DeviceDecoder(model, {} if cache is None else cache, Device("cpu"), use_graph=True, read_every=every)


class _Counting:
    """Counts a decoder's decode steps and fails on a read between steps."""

    def __init__(self, decoder, monkeypatch):
        self.steps = 0
        advance = decoder.advance

        def counted():
            self.steps += 1
            advance()

        monkeypatch.setattr(decoder, "advance", counted)
        monkeypatch.setattr(decoder, "next_tokens", lambda *args: pytest.fail("read between steps"))
        monkeypatch.setattr(decoder, "step", lambda *args: pytest.fail("the host wrote tokens"))


def test_ring_rows_are_bound_by_address_and_read_in_one_copy():
    ring = TokenRing(Device("cpu"), slots=4, batch=3)
    assert ring.address(5) - ring.address(0) == 3 * 8 and ring.address(4) == ring.address(0)
    ring.write(2, np.array([7, 8, 9]))
    ring.write(3, np.array([1, 2, 3]))
    np.testing.assert_array_equal(ring.read(), [[0, 0, 0], [0, 0, 0], [7, 8, 9], [1, 2, 3]])
    np.testing.assert_array_equal(ring.tokens(6, 8), [[7, 8, 9], [1, 2, 3]])  # steps 6 and 7: rows 2 and 3
    for first, end in ((3, 3), (0, 5)):
        with pytest.raises(ValueError, match="holds 1 to 4 unread steps"):
            ring.tokens(first, end)


def test_ring_slots_are_even_and_hold_the_interval():
    assert [ring_slots(n) for n in (1, 2, 3, 7, 8)] == [2, 2, 4, 8, 8]


@pytest.mark.parametrize("every", [2, 3, 8])
def test_reading_in_groups_gives_the_tokens_of_reading_after_each_step(model, monkeypatch, every):
    ids = tokens(4, 6, seed=21)
    mask = np.ones_like(ids)
    mask[2, :3] = 0
    settings = GenerationSettings.create(max_new_tokens=12, eos_token_id=[])
    expected = generate(HostDecoder(model), ids, mask, settings)
    np.testing.assert_array_equal(generate(_decoder(model, 1), ids, mask, settings), expected)
    decoder = _decoder(model, every)
    generate(decoder, ids[:, :2], np.ones_like(ids[:, :2]), GenerationSettings.create(max_new_tokens=1))  # the ring
    assert decoder.buffers.slots == ring_slots(every) and decoder.read_every(settings) == every
    counting = _Counting(decoder, monkeypatch)
    streamed = []
    out = generate(decoder, ids, mask, settings, on_tokens=streamed.append)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.stack(streamed, axis=1), out[:, 6:])
    assert counting.steps == 11  # twelve tokens: the prefill's and eleven steps


@pytest.mark.parametrize("every", [3, 8])
def test_end_of_text_in_groups(model, monkeypatch, every):
    ids = tokens(3, 5, seed=8)
    free = generate(HostDecoder(model), ids, np.ones_like(ids), GenerationSettings.create(max_new_tokens=10,
                                                                                         eos_token_id=[]))
    # One row ends early; every row ends by the fourth token (the last at step 3).
    for eos, last_needed in ((int(free[0, 5 + 3]), None), ([int(free[r, 5 + r + 1]) for r in range(3)], 3)):
        settings = GenerationSettings.create(max_new_tokens=10, eos_token_id=eos, pad_token_id=60)
        expected = generate(HostDecoder(model), ids, np.ones_like(ids), settings)
        decoder = _decoder(model, every)
        generate(decoder, ids[:, :1], np.ones_like(ids[:, :1]), GenerationSettings.create(max_new_tokens=1))
        counting = _Counting(decoder, monkeypatch)
        streamed = []
        out = generate(decoder, ids, np.ones_like(ids), settings, on_tokens=streamed.append)
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(np.stack(streamed, axis=1), out[:, 5:])
        if last_needed is not None:  # every row has ended by token 3, chosen by step 3
            assert out.shape[1] <= 5 + last_needed + 1
            assert counting.steps <= last_needed + every - 1, counting.steps  # one group past the end at most


def test_sampling_reads_after_every_step(model):
    ids = tokens(2, 4, seed=3)
    settings = GenerationSettings.create(max_new_tokens=7, do_sample=True, top_k=8, seed=4, eos_token_id=[])
    decoder = _decoder(model, 8)
    np.testing.assert_array_equal(generate(decoder, ids, np.ones_like(ids), settings),
                                  generate(HostDecoder(model), ids, np.ones_like(ids), settings))
    assert decoder.read_every(settings) == 1 and decoder.read_every(GenerationSettings.create()) == 8


def test_graph_ids_count_each_batch_sizes_rings(model):
    cache: dict = {}
    decoder = _decoder(model, 3, cache)
    for batch in (2, 1):
        ids = tokens(batch, 3, seed=batch)
        generate(decoder, ids, np.ones_like(ids), GenerationSettings.create(max_new_tokens=6, eos_token_id=[]))
    assert cache[2].graph_ids == (1, 2, 3, 4) and cache[1].graph_ids == (5, 6, 7, 8)
    assert cache[2].captured == [True] * 4


def test_the_option_and_its_bad_values(model):
    assert RuntimeOptions(provider="cuda").token_read_interval == DEFAULT_READ_TOKENS_EVERY == 16
    assert RuntimeOptions(provider="cuda", read_tokens_every=1).token_read_interval == 1
    assert RuntimeOptions(provider="cuda", io_binding=False).token_read_interval == 1
    assert RuntimeOptions().token_read_interval == 1
    assert RuntimeOptions(provider="cuda", read_tokens_every=4).to_dict()["read_tokens_every"] == 4
    for bad in (0, -2, True, 2.5, "8"):
        with pytest.raises(MambaExportError, match="read_tokens_every must be an integer >= 1"):
            RuntimeOptions(provider="cuda", read_tokens_every=bad)
    with pytest.raises(MambaExportError, match="read_tokens_every=4 applies to provider='cuda'"):
        RuntimeOptions(read_tokens_every=4)
    for bad in (0, False, 1.0):
        with pytest.raises(ValueError, match="read_every must be an integer >= 1"):
            _decoder(model, bad)
