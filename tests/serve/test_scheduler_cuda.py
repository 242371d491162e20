"""The scheduler on the CUDA provider (marked gpu): its running batch stays on the device
(serve/device_batch.py, CUDA graphs per bucket) and concurrent requests equal generate() on CUDA."""

from __future__ import annotations

import numpy as np
import pytest

from mamba_export.options import RuntimeOptions
from mamba_export.runtime.generation import GenerationSettings
from mamba_export.runtime.model import ORTMambaForCausalLM
from mamba_export.serve.device_batch import FIRST_GRAPH_ID, DeviceBatch
from mamba_export.serve.scheduler import Scheduler


def _cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _cuda_available(),
                                                  reason="needs onnxruntime-gpu with CUDAExecutionProvider and a GPU")]


def _solo(model, prompt, **kwargs):
    return model.generate(np.asarray([prompt]), max_new_tokens=10, eos_token_id=[], **kwargs)[0, len(prompt):].tolist()


@pytest.mark.parametrize("cuda_graph", [None, False])
def test_concurrent_requests_on_cuda_equal_solo_generate(export_tiny, ops_library, cuda_graph):
    options = RuntimeOptions(provider="cuda", cuda_graph=cuda_graph)
    model = ORTMambaForCausalLM.from_pretrained(export_tiny("untied_head"), options=options)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(1, 61, int(rng.integers(1, 40))).tolist() for _ in range(12)]
    # every third request samples with its own seed; the rest are greedy
    kwargs = [dict(do_sample=True, top_k=20, seed=i) if i % 3 == 2 else {} for i in range(len(prompts))]
    before = _solo(model, prompts[0])  # generate()'s own graphs are captured before the scheduler's
    scheduler = Scheduler(model, max_batch=5, prefill_chunk=16)
    assert isinstance(scheduler.batch, DeviceBatch)
    outputs = [[] for _ in prompts]
    for prompt, out, extra in zip(prompts, outputs, kwargs, strict=True):
        settings = GenerationSettings.create(max_new_tokens=10, eos_token_id=[], **extra)
        scheduler.submit(prompt, settings, lambda event, out=out: event.token is None or out.append(event.token))
    scheduler.run_until_idle()
    for prompt, out, extra in zip(prompts, outputs, kwargs, strict=True):
        assert out == _solo(model, prompt, **extra), prompt
    assert _solo(model, prompts[0]) == before
    buckets = model.batch_cache
    assert set(buckets) <= {1, 2, 4, 5} and 5 in buckets
    assert all(i >= FIRST_GRAPH_ID for b in buckets.values() for i in b.graph_ids)
    assert all(i < FIRST_GRAPH_ID for b in model.decode_cache.values() for i in b.graph_ids)
    if model.options.use_cuda_graph:
        assert buckets[5].captured == [True, True]
