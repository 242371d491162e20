"""Greedy generation that reads each step's tokens while the next step runs (runtime/run_ahead.py).

With a stand-in decoder: the tokens arrive in order, a buffer is never written while the reader
holds it, the loop stops at most one step past the point where every row has finished, and
errors on either thread surface. With the tiny export on the CPU (the device decoder's logic on
CPU OrtValues): the same tokens, end-of-text and streaming as the loop that reads between steps.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mamba_export.options import RuntimeOptions
from mamba_export.runtime.generation import GenerationSettings, HostDecoder, generate
from mamba_export.runtime.io_binding import Device, DeviceDecoder
from mamba_export.runtime.model import ORTMambaForCausalLM
from mamba_export.runtime.run_ahead import run_ahead
from tests.support.prompts import tokens


class FakeDecoder:
    """Two alternating buffers like the device decoder's: step k writes buffer k % 2 with the value k.
    Records a violation if a step writes a buffer whose tokens the reader has not taken, or that the
    reader is copying."""

    def __init__(self, read_seconds: float = 0.0):
        self.buffers = [0, None]  # the prefill's tokens (step 0) in buffer 0
        self.taken = [True, True]
        self.taken[0] = False
        self.reading = [False, False]
        self.steps = 0
        self.read_seconds = read_seconds
        self.violations = []
        self.lock = threading.Lock()

    def tokens_buffer(self):
        return 0

    def advance(self):
        self.steps += 1
        index = self.steps % 2
        with self.lock:
            if not self.taken[index] or self.reading[index]:
                self.violations.append(self.steps)
            self.buffers[index], self.taken[index] = self.steps, False
        return index

    def read(self, index):
        with self.lock:
            self.reading[index] = True
        time.sleep(self.read_seconds)
        with self.lock:
            value = self.buffers[index]
            self.reading[index], self.taken[index] = False, True
        return np.array([value])


@pytest.mark.parametrize("read_seconds", [0.0, 0.002])
@pytest.mark.parametrize("count", [1, 2, 7])
def test_tokens_arrive_in_order_and_no_buffer_is_written_while_held(count, read_seconds):
    decoder, seen = FakeDecoder(read_seconds), []
    run_ahead(decoder, count, lambda tokens: seen.append(int(tokens[0])) and False)
    assert seen == list(range(count))
    assert decoder.steps == count - 1
    assert decoder.violations == []


@pytest.mark.parametrize("stop_at", [0, 3])
def test_a_stop_runs_at_most_one_step_more(stop_at):
    decoder, seen = FakeDecoder(), []

    def take(tokens):
        seen.append(int(tokens[0]))
        return seen[-1] == stop_at

    run_ahead(decoder, 20, take)
    assert seen == list(range(stop_at + 1))
    assert stop_at <= decoder.steps <= stop_at + 1


def test_an_error_in_take_is_raised_after_the_reader_ends():
    decoder = FakeDecoder()

    def take(tokens):
        if tokens[0] == 2:
            raise KeyError("streaming failed")
        return False

    before = threading.active_count()
    with pytest.raises(KeyError, match="streaming failed"):
        run_ahead(decoder, 10, take)
    assert decoder.steps <= 3
    assert threading.active_count() == before


def test_an_error_in_a_step_stops_the_reader():
    decoder, seen = FakeDecoder(), []

    def advance():
        raise RuntimeError("the step failed")

    decoder.advance = advance
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="the step failed"):
        run_ahead(decoder, 5, lambda tokens: seen.append(int(tokens[0])))
    assert threading.active_count() == before
    assert seen in ([], [0])


@pytest.fixture(scope="module")
def folder(exported, export_tiny):
    exported("custom")  # the custom-op library, or a skip that says how to build it
    return export_tiny(backend="custom", logits="last", next_tokens=True)


def _decoder(folder, overlap: bool) -> DeviceDecoder:
    model = ORTMambaForCausalLM.from_pretrained(folder, options=RuntimeOptions(overlap_token_reads=overlap))
    return DeviceDecoder(model, {}, Device("cpu"), use_graph=True)


def test_greedy_generation_runs_ahead_and_gives_the_same_tokens(folder, monkeypatch):
    ids = tokens(4, 6, seed=21)
    mask = np.ones_like(ids)
    mask[2, :3] = 0
    settings = GenerationSettings.create(max_new_tokens=12, eos_token_id=[])
    between = generate(_decoder(folder, overlap=False), ids, mask, settings)
    ahead = _decoder(folder, overlap=True)
    assert ahead.feeds_itself(settings) is False  # no buffers before the first prefill
    monkeypatch.setattr(ahead, "next_tokens", lambda *args: pytest.fail("read between steps"))
    streamed = []
    out = generate(ahead, ids, mask, settings, on_tokens=streamed.append)
    np.testing.assert_array_equal(out, between)
    np.testing.assert_array_equal(np.stack(streamed, axis=1), out[:, 6:])
    assert ahead.feeds_itself(settings)
    assert not ahead.feeds_itself(GenerationSettings.create(do_sample=True, seed=1))


def test_end_of_text_with_running_ahead(folder):
    ids = tokens(3, 5, seed=8)
    free = generate(HostDecoder(_decoder(folder, overlap=False).model), ids, np.ones_like(ids),
                    GenerationSettings.create(max_new_tokens=10, eos_token_id=[]))
    for eos in (int(free[0, 5 + 3]), [int(free[r, 5 + 1]) for r in range(3)]):  # one row early; every row early
        settings = GenerationSettings.create(max_new_tokens=10, eos_token_id=eos, pad_token_id=60)
        expected = generate(_decoder(folder, overlap=False), ids, np.ones_like(ids), settings)
        np.testing.assert_array_equal(generate(_decoder(folder, overlap=True), ids, np.ones_like(ids), settings),
                                      expected)


def test_overlap_token_reads_is_an_option_off_by_default(folder):
    assert RuntimeOptions().overlap_token_reads is False
    assert RuntimeOptions(overlap_token_reads=True).to_dict()["overlap_token_reads"] is True
    decoder = DeviceDecoder(ORTMambaForCausalLM.from_pretrained(folder), {}, Device("cpu"), use_graph=True)
    ids = tokens(2, 4, seed=1)
    settings = GenerationSettings.create(max_new_tokens=3, eos_token_id=[])
    generate(decoder, ids, np.ones_like(ids), settings)
    assert not decoder.feeds_itself(settings)
