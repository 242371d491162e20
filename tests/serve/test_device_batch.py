"""The scheduler's device batch store (serve/device_batch.py) on CPU OrtValues.

The CUDA path's buckets, A/B state sets, row gathers, device prefill and token head run here
on ``Device("cpu")`` with the graph bookkeeping on, so a row gathered from the wrong place, a
bucket that grows or shrinks into the wrong set, or a joining row that misses its prefill
states gives a request other tokens than ``generate()`` on its prompt alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from mamba_export.runtime.generation import GenerationSettings, generate
from mamba_export.runtime.io_binding import Device, DeviceDecoder
from mamba_export.runtime.model import ORTMambaForCausalLM
from mamba_export.serve.batch import HostBatch
from mamba_export.serve.device_batch import FIRST_GRAPH_ID, DeviceBatch, bucket_sizes
from mamba_export.serve.scheduler import CANCELLED, ERROR, LENGTH, Scheduler
from tests.serve.test_scheduler import prompts, solo, submit


@pytest.fixture(scope="module")
def model(export_tiny, ops_library):
    return ORTMambaForCausalLM.from_pretrained(export_tiny("untied_head"))


class PoisonedCPU(Device):
    """CPU OrtValues whose fresh buffers hold NaN, not the zeros a new allocation often has, so a
    state read before it was written shows in the tokens."""

    def empty(self, shape: tuple, dtype):
        return self.copy_of(np.full(shape, np.nan, dtype))


def device_scheduler(model, max_batch, **kwargs):
    store = DeviceBatch(model, max_batch, PoisonedCPU("cpu"), True, cache={})
    return Scheduler(model, max_batch, store=store, **kwargs)


def test_bucket_sizes():
    assert bucket_sizes(1) == [1]
    assert bucket_sizes(6) == [1, 2, 4, 6]
    assert bucket_sizes(8) == [1, 2, 4, 8]


def test_the_cpu_provider_keeps_the_host_store(model):
    assert isinstance(Scheduler(model).batch, HostBatch)


def test_rows_join_and_leave_through_growing_and_shrinking_buckets(model):
    """Requests arrive over several steps (one prompt read in chunks, one cancelled, greedy and
    sampling rows mixed) and leave at different steps; each still gets its solo tokens."""
    scheduler = device_scheduler(model, 6, prefill_chunk=5)
    texts = prompts(9, seed=11, longest=9)
    long_prompt = list(range(3, 20))  # 17 tokens: four chunks of at most 5
    plan = {  # step -> requests submitted before it: (prompt, new tokens, generate() keywords)
        0: [(texts[0], 30, {})],
        2: [(texts[1], 6, dict(do_sample=True, top_k=10, seed=3)), (texts[2], 4, {})],
        4: [(long_prompt, 9, {}), (texts[3], 12, dict(do_sample=True, temperature=0.8, seed=4)),
            (texts[4], 3, {}), (texts[5], 7, {})],
        6: [(texts[6], 5, {}), (texts[7], 2, dict(do_sample=True, top_p=0.8, seed=5))],
        9: [(texts[8], 8, {})],
    }
    cases, buckets = [], []
    for step in range(200):
        for prompt, count, kwargs in plan.get(step, []):
            request_id, sink = submit(scheduler, model, prompt, count, eos_token_id=[], **kwargs)
            cases.append((prompt, count, kwargs, sink, request_id))
        if step in (10, 12):  # texts[5] while it waits, texts[3] (sampling) while it runs
            scheduler.cancel(cases[6 if step == 10 else 4][4])
        if step > 12 and not scheduler.metrics()["running"] and not scheduler.metrics()["waiting"]:
            break
        scheduler.step()
        buckets.append(scheduler.batch.bucket)
    waited, ran = cases[6][3], cases[4][3]
    assert waited.end.finish_reason == ran.end.finish_reason == CANCELLED
    assert not waited.tokens and 0 < len(ran.tokens) < 12
    for prompt, count, kwargs, sink, _ in cases:
        expected = solo(model, prompt, count, eos_token_id=[], **kwargs)
        if sink is ran:
            assert sink.tokens == expected[:len(sink.tokens)]
        elif sink is not waited:
            assert sink.end.finish_reason == LENGTH
            assert sink.tokens == expected, (prompt, kwargs)
    # the batch grew from 1 through 2 and 4 to 6 rows' bucket, then shrank back and emptied
    peak = buckets.index(6)
    assert buckets[0] == 1 and {1, 2, 4} <= set(buckets[:peak])
    assert {4, 2, 1} <= set(buckets[peak:]) and buckets[-1] is None
    assert sorted(size for size in scheduler.batch._decoder.cache) == [1, 2, 4, 6]


def test_an_export_with_next_tokens_gives_its_own_argmax_and_runs_no_token_head(export_tiny, monkeypatch):
    """Greedy rows take the decode step's next_tokens (written to the spare buffer), no token head runs,
    and requests that join late, leave early and sample still get their solo tokens."""
    tokens_model = ORTMambaForCausalLM.from_pretrained(export_tiny("untied_head", backend="custom",
                                                                   next_tokens=True))
    assert tokens_model.folder.has_next_tokens
    scheduler = device_scheduler(tokens_model, 4, prefill_chunk=64)
    texts = prompts(6, seed=21, longest=9)
    plan = {0: [(texts[0], 9, {}), (texts[1], 3, {})],
            2: [(texts[2], 6, dict(do_sample=True, top_k=10, seed=7)), (texts[3], 5, {})],
            3: [(texts[4], 7, {}), (texts[5], 4, {})]}
    monkeypatch.setattr(tokens_model.token_head, "run", lambda binding: pytest.fail("the token head ran"))
    cases = []
    for step in range(100):
        for prompt, count, kwargs in plan.get(step, []):
            cases.append((prompt, count, kwargs, submit(scheduler, tokens_model, prompt, count, eos_token_id=[],
                                                        **kwargs)[1]))
        if step > 3 and not scheduler.metrics()["running"] and not scheduler.metrics()["waiting"]:
            break
        scheduler.step()
    monkeypatch.undo()  # solo() below runs generate(), whose decoder takes the graph's tokens too
    for prompt, count, kwargs, sink in cases:
        assert sink.end.finish_reason == LENGTH
        assert sink.tokens == solo(tokens_model, prompt, count, eos_token_id=[], **kwargs), (prompt, kwargs)
    assert all(buffers.spare is not None for buffers in scheduler.batch._decoder.cache.values())


def test_graph_ids_stay_apart_from_generate(model):
    cache = {}
    scheduler = Scheduler(model, 4, store=DeviceBatch(model, 4, Device("cpu"), True, cache=cache))
    sinks = [submit(scheduler, model, p, 6, eos_token_id=[])[1] for p in prompts(4, seed=12)]
    scheduler.run_until_idle()
    assert all(s.end.finish_reason == LENGTH for s in sinks)
    decode_cache = {}
    ids = np.array([[5, 6, 7]])
    generate(DeviceDecoder(model, decode_cache, Device("cpu"), use_graph=True), ids, np.ones_like(ids),
             GenerationSettings.create(max_new_tokens=3, eos_token_id=[]))
    serving = [i for buffers in cache.values() for i in buffers.graph_ids]
    generating = [i for buffers in decode_cache.values() for i in buffers.graph_ids]
    assert min(serving) == FIRST_GRAPH_ID and len(set(serving)) == len(serving)
    assert all(buffers.zeros is None for buffers in cache.values())  # prompts start from one zero row
    assert max(generating) < FIRST_GRAPH_ID
    assert all(buffers.captured == [True, True] for size, buffers in cache.items() if size > 1)


def test_a_failed_decode_step_ends_the_batch_and_the_next_requests_are_served(model, monkeypatch):
    scheduler = device_scheduler(model, 4, prefill_chunk=64)
    first = [submit(scheduler, model, p, 5, eos_token_id=[])[1] for p in prompts(3, seed=13)]
    with monkeypatch.context() as patch:
        patch.setattr(scheduler.batch, "decode", lambda tokens: (_ for _ in ()).throw(RuntimeError("device lost")))
        scheduler.step()
    assert all(s.end.finish_reason == ERROR and "device lost" in s.end.message for s in first)
    assert scheduler.metrics()["running"] == 0 and scheduler.batch.bucket is None
    prompt = prompts(1, seed=14)[0]
    _, sink = submit(scheduler, model, prompt, 5, eos_token_id=[])
    scheduler.run_until_idle()
    assert sink.tokens == solo(model, prompt, 5, eos_token_id=[])


def test_only_a_prompt_read_alone_goes_on_in_chunks(model):
    store = DeviceBatch(model, 4, Device("cpu"), cache={})
    _, handles = store.prefill(np.array([[1, 2], [3, 4]]), None, None)
    with pytest.raises(ValueError, match="read alone"):
        store.prefill(np.array([[5]]), None, handles[1])
