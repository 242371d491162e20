"""The scheduler on the CUDA provider (marked gpu): concurrent requests equal generate() on CUDA."""

from __future__ import annotations

import numpy as np
import pytest

from mamba_export.options import RuntimeOptions
from mamba_export.runtime.generation import GenerationSettings
from mamba_export.runtime.model import ORTMambaForCausalLM
from mamba_export.serve.scheduler import Scheduler


def _cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _cuda_available(),
                                                  reason="needs onnxruntime-gpu with CUDAExecutionProvider and a GPU")]


def test_concurrent_requests_on_cuda_equal_solo_generate(export_tiny, ops_library):
    model = ORTMambaForCausalLM.from_pretrained(export_tiny("untied_head"), options=RuntimeOptions(provider="cuda"))
    rng = np.random.default_rng(0)
    prompts = [rng.integers(1, 61, int(rng.integers(1, 40))).tolist() for _ in range(12)]
    scheduler = Scheduler(model, max_batch=5, prefill_chunk=16)
    outputs = [[] for _ in prompts]
    for prompt, out in zip(prompts, outputs, strict=True):
        settings = GenerationSettings.create(max_new_tokens=10, eos_token_id=[])
        scheduler.submit(prompt, settings, lambda event, out=out: event.token is None or out.append(event.token))
    scheduler.run_until_idle()
    for prompt, out in zip(prompts, outputs, strict=True):
        solo = model.generate(np.asarray([prompt]), max_new_tokens=10, eos_token_id=[])[0, len(prompt):].tolist()
        assert out == solo, prompt
