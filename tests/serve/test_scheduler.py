"""The continuous-batching scheduler on a tiny export, stepped by hand (no Ray, no HTTP).

Every request's tokens are compared with ``generate()`` on that prompt alone, so a row
that reads another row's state or logits (a crossed row), a join or leave that
misplaces states, or a chunked prefill that loses the prompt all fail here. Each test runs
on both batch stores: the host arrays of the CPU provider and the device buffers of CUDA,
the latter on CPU OrtValues (``Device("cpu")``, with the graph bookkeeping on).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mamba_export.errors import ServerBusyError
from mamba_export.runtime.generation import GenerationSettings
from mamba_export.runtime.io_binding import Device
from mamba_export.runtime.model import ORTMambaForCausalLM
from mamba_export.serve.batch import HostBatch
from mamba_export.serve.device_batch import DeviceBatch
from mamba_export.serve.scheduler import CANCELLED, LENGTH, STOP, Scheduler

VOCAB = 61


@pytest.fixture(scope="module")
def model(export_tiny, ops_library):
    # The untied head makes greedy tokens depend on the state, not mostly on the last token.
    return ORTMambaForCausalLM.from_pretrained(export_tiny("untied_head"))


@pytest.fixture(params=["host", "device", "device_bucketed"])
def make_scheduler(request):
    """Scheduler(model, ...) on the host store or on the device store over CPU OrtValues, the latter
    also with prompts read from zero states padded to buckets of 8 tokens (as on CUDA, of 64)."""
    def make(model, max_batch=32, **kwargs):
        if request.param == "host":
            store = HostBatch(model)
        else:
            bucket = 8 if request.param == "device_bucketed" else None
            store = DeviceBatch(model, max_batch, Device("cpu"), True, prefill_bucket=bucket)
        return Scheduler(model, max_batch, store=store, **kwargs)

    return make


class Collector:
    """A request's sink: the tokens and the final event."""

    def __init__(self):
        self.tokens, self.end, self.done = [], None, threading.Event()

    def __call__(self, event):
        if event.finish_reason is None:
            assert self.end is None, "a token after the end"
            self.tokens.append(event.token)
        else:
            self.end = event
            self.done.set()


def settings(model, max_new_tokens, **kwargs):
    kwargs.setdefault("eos_token_id", model.folder.special_token("eos_token_id"))
    return GenerationSettings.create(max_new_tokens=max_new_tokens, **kwargs)


def solo(model, prompt, max_new_tokens, **kwargs):
    """generate() on the prompt alone: its new tokens up to and with the first EOS."""
    out = model.generate(np.asarray([prompt]), max_new_tokens=max_new_tokens, **kwargs)[0, len(prompt):].tolist()
    eos = model.folder.special_token("eos_token_id")
    return out[:out.index(eos) + 1] if eos in out else out


def prompts(count, seed=0, longest=20):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, VOCAB, int(rng.integers(1, longest + 1))).tolist() for _ in range(count)]


def submit(scheduler, model, prompt, max_new_tokens, **kwargs):
    sink = Collector()
    request_id = scheduler.submit(prompt, settings(model, max_new_tokens, **kwargs), sink)
    return request_id, sink


def test_concurrent_greedy_requests_each_get_their_solo_tokens(model, make_scheduler):
    scheduler = make_scheduler(model, max_batch=4, max_waiting=64, prefill_chunk=6)
    cases = [(p, 3 + 2 * i) for i, p in enumerate(prompts(10, seed=1))]
    sinks = [submit(scheduler, model, p, n)[1] for p, n in cases]
    scheduler.run_until_idle()
    for (prompt, n), sink in zip(cases, sinks, strict=True):
        assert sink.tokens == solo(model, prompt, n), prompt
        assert sink.end.finish_reason == (STOP if len(sink.tokens) < n else LENGTH)
    assert scheduler.metrics()["finished_total"] == len(cases)


def test_seeded_sampling_matches_generate_and_repeats(model, make_scheduler):
    scheduler = make_scheduler(model, max_batch=8, prefill_chunk=64)
    cases = [(p, dict(do_sample=True, temperature=0.7 + 0.1 * i, top_p=0.9, seed=10 + i))
             for i, p in enumerate(prompts(5, seed=2))]
    runs = []
    for _ in range(2):
        sinks = [submit(scheduler, model, p, 12, **kw)[1] for p, kw in cases]
        sinks.append(submit(scheduler, model, cases[0][0], 12)[1])  # a greedy row between them
        scheduler.run_until_idle()
        runs.append([s.tokens for s in sinks])
    assert runs[0] == runs[1]
    for (prompt, kwargs), tokens in zip(cases, runs[0], strict=False):
        assert tokens == solo(model, prompt, 12, **kwargs)
    assert len({tuple(t) for t in runs[0][:-1]}) > 1  # different seeds, different draws


def test_requests_join_and_leave_between_steps(model, make_scheduler):
    scheduler = make_scheduler(model, max_batch=4, prefill_chunk=64)
    long_prompt, short_prompt = prompts(2, seed=3)
    _, first = submit(scheduler, model, long_prompt, 8, eos_token_id=[])
    scheduler.step()
    scheduler.step()
    assert scheduler.metrics()["running"] == 1 and len(first.tokens) == 2
    _, second = submit(scheduler, model, short_prompt, 2, eos_token_id=[])
    assert scheduler.metrics()["waiting"] == 1
    scheduler.step()  # second joins and both advance
    assert scheduler.metrics()["running"] == 2 and (len(first.tokens), len(second.tokens)) == (3, 1)
    scheduler.step()  # second's last token: it leaves
    assert second.end.finish_reason == LENGTH and scheduler.metrics()["running"] == 1
    scheduler.run_until_idle()
    assert first.tokens == solo(model, long_prompt, 8, eos_token_id=[])
    assert second.tokens == solo(model, short_prompt, 2, eos_token_id=[])


def test_a_long_prompt_is_read_in_chunks_while_the_batch_decodes(model, make_scheduler):
    scheduler = make_scheduler(model, max_batch=4, prefill_chunk=4)
    running_prompt, long_prompt = [5, 6, 7], list(range(1, 19))
    _, running = submit(scheduler, model, running_prompt, 30, eos_token_id=[])
    scheduler.step()
    _, joining = submit(scheduler, model, long_prompt, 5, eos_token_id=[])
    for step in range(1, 5):  # 18 tokens at 4 a step: four steps waiting, joined on the fifth
        scheduler.step()
        assert len(running.tokens) == 1 + step and not joining.tokens
        assert scheduler.metrics()["waiting"] == 1
    scheduler.step()
    assert len(joining.tokens) == 1
    scheduler.run_until_idle()
    assert joining.tokens == solo(model, long_prompt, 5, eos_token_id=[])
    assert running.tokens == solo(model, running_prompt, 30, eos_token_id=[])


class CountingModel:
    """The model, counting its calls and the batch of each."""

    def __init__(self, model):
        self.model, self.batches = model, []

    def __call__(self, ids, mask, states):
        self.batches.append(ids.shape)
        return self.model(ids, mask, states)


def test_new_prompts_are_read_together_left_padded(model):
    counting = CountingModel(model)
    scheduler = Scheduler(counting, max_batch=4, prefill_chunk=24)
    cases = [[3, 4, 5, 6, 7, 8], [9, 10], [11, 12, 13, 14], [15, 16, 17, 18, 19, 20, 21]]
    sinks = [submit(scheduler, model, p, 6, eos_token_id=[])[1] for p in cases]
    scheduler.step()
    # 3 prompts padded to 6 fit the budget of 24 (4 x 7 would not); the 4th's first 6 tokens use the rest
    assert counting.batches == [(3, 6), (1, 6), (3, 1)]
    scheduler.step()
    assert counting.batches[3:] == [(1, 1), (4, 1)]
    scheduler.run_until_idle()
    for prompt, sink in zip(cases, sinks, strict=True):
        assert sink.tokens == solo(model, prompt, 6, eos_token_id=[])


def test_cancelled_requests_leave_and_the_others_are_untouched(model, make_scheduler):
    scheduler = make_scheduler(model, max_batch=4, prefill_chunk=64)
    cases = prompts(4, seed=5)
    ids_sinks = [submit(scheduler, model, p, 10, eos_token_id=[]) for p in cases]
    scheduler.step()
    scheduler.step()
    scheduler.cancel(ids_sinks[1][0])
    waiting_id, waiting_sink = submit(scheduler, model, cases[0], 10)
    scheduler.cancel(waiting_id)  # cancelled before it was admitted
    scheduler.step()
    cancelled = ids_sinks[1][1]
    assert cancelled.end.finish_reason == CANCELLED and len(cancelled.tokens) == 2
    assert waiting_sink.end.finish_reason == CANCELLED and not waiting_sink.tokens
    assert scheduler.metrics()["running"] == 3
    scheduler.run_until_idle()
    for i in (0, 2, 3):
        assert ids_sinks[i][1].tokens == solo(model, cases[i], 10, eos_token_id=[])
    assert scheduler.metrics()["cancelled_total"] == 2


def test_a_full_queue_is_refused_with_server_busy(model, make_scheduler):
    scheduler = make_scheduler(model, max_batch=2, max_waiting=1, prefill_chunk=64)
    for prompt in prompts(3, seed=6):
        submit(scheduler, model, prompt, 4)
    with pytest.raises(ServerBusyError, match="server busy"):
        submit(scheduler, model, [1, 2], 4)
    assert scheduler.metrics()["rejected_total"] == 1
    scheduler.run_until_idle()
    submit(scheduler, model, [1, 2], 4)  # room again


def test_zero_tokens_ends_at_once(model, make_scheduler):
    scheduler = make_scheduler(model)
    _, sink = submit(scheduler, model, [1, 2, 3], 0)
    assert sink.end.finish_reason == LENGTH and not sink.tokens and scheduler.run_until_idle() == 0


def test_the_background_loop_serves_and_stops(model, make_scheduler):
    scheduler = make_scheduler(model, max_batch=3, prefill_chunk=5)
    scheduler.start()
    try:
        cases = prompts(6, seed=7)
        sinks = [submit(scheduler, model, p, 6)[1] for p in cases]
        assert all(s.done.wait(60) for s in sinks)
        for prompt, sink in zip(cases, sinks, strict=True):
            assert sink.tokens == solo(model, prompt, 6)
        metrics = scheduler.metrics()
        assert metrics["tokens_per_s"] > 0 and 0 < metrics["batch_occupancy"] <= 1
    finally:
        scheduler.stop()
    with pytest.raises(ServerBusyError, match="shutting down"):
        submit(scheduler, model, [1], 2)


class GoneSink(Collector):
    """A sink whose consumer goes away after ``tokens`` tokens: every later call raises, as
    ``loop.call_soon_threadsafe`` does once the request's event loop is closed."""

    def __init__(self, tokens):
        super().__init__()
        self.limit, self.calls = tokens, 0

    def __call__(self, event):
        self.calls += 1
        if len(self.tokens) >= self.limit:
            raise RuntimeError("Event loop is closed")
        super().__call__(event)


def test_a_sink_that_raises_cancels_only_its_own_request(model, make_scheduler):
    scheduler = make_scheduler(model, max_batch=4, prefill_chunk=64)
    cases = prompts(3, seed=8)
    gone = GoneSink(2)
    scheduler.submit(cases[0], settings(model, 10, eos_token_id=[]), gone)
    others = [submit(scheduler, model, p, 10, eos_token_id=[])[1] for p in cases[1:]]
    scheduler.run_until_idle(max_steps=100)
    assert len(gone.tokens) == 2 and gone.end is None
    assert gone.calls == 4, "the failed token and the cancel event: no further calls"
    for prompt, sink in zip(cases[1:], others, strict=True):
        assert sink.tokens == solo(model, prompt, 10, eos_token_id=[]) and sink.end.finish_reason == LENGTH
    assert scheduler.metrics()["cancelled_total"] == 1


class BrokenOnce:
    """Wraps a batch store; its next decode raises a non-store error once (a bug, say)."""

    def __init__(self, store):
        self.store, self.armed = store, True

    def __getattr__(self, name):
        return getattr(self.store, name)

    def greedy_tokens(self):
        if self.armed:
            self.armed = False
            raise ZeroDivisionError("a bug in the step")
        return self.store.greedy_tokens()


def test_a_failed_step_ends_its_requests_and_the_loop_serves_the_next(model, make_scheduler):
    scheduler = make_scheduler(model, max_batch=3, prefill_chunk=64)
    scheduler.batch = BrokenOnce(scheduler.batch)
    scheduler.start()
    try:
        first = submit(scheduler, model, [1, 2, 3], 6)[1]
        assert first.done.wait(60), "the request hung after the step failed"
        assert first.end.finish_reason == "error" and "ZeroDivisionError" in first.end.message
        prompt = prompts(1, seed=9)[0]
        second = submit(scheduler, model, prompt, 6)[1]
        assert second.done.wait(60), "the loop stopped after a failed step"
        assert second.tokens == solo(model, prompt, 6)
    finally:
        scheduler.stop()
