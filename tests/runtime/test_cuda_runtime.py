"""The runtime on CUDA (marked gpu): IO binding, CUDA graphs, new prompt lengths, placement.

Run with ``pytest -m gpu tests/runtime/test_cuda_runtime.py -s`` on a machine with
onnxruntime-gpu and the CUDA build of the library ($MAMBA_EXPORT_OPS_LIBRARY or
build/custom_ops_cuda). Timings are printed, never asserted (scripts/bench_e2e.py
measures them); the assertions are about tokens.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from mamba_export.errors import BackendUnavailableError, CustomOpsNotFoundError
from mamba_export.options import DEFAULT_READ_TOKENS_EVERY, RuntimeOptions
from mamba_export.runtime.model import ORTMambaForCausalLM
from tests.support.prompts import left_padded_batch, tokens


def _cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _cuda_available(),
                                                  reason="needs onnxruntime-gpu with CUDAExecutionProvider and a GPU")]
NEW_LENGTHS = (17, 33, 65, 129, 257)


def on_cuda(folder, **options) -> ORTMambaForCausalLM:
    return ORTMambaForCausalLM.from_pretrained(folder, options=RuntimeOptions(provider="cuda", **options))


@pytest.fixture(scope="module", params=["custom", "standard"])
def folder(request, exported):
    return exported(request.param)


@pytest.fixture(scope="module")
def cpu_model(folder):
    return ORTMambaForCausalLM.from_pretrained(folder)


def test_first_calls_at_new_prompt_lengths(folder, cpu_model, capsys):
    """Five prompt lengths the session has never seen: each first call gives the CPU's tokens;
    first- and second-call times are printed (the stall the CUDA defaults avoid)."""
    model = on_cuda(folder)
    model.generate(tokens(1, 8), max_new_tokens=4, eos_token_id=[])
    for length in NEW_LENGTHS:
        ids = tokens(1, length, seed=length)
        times, outputs = [], []
        for _ in range(2):
            start = time.perf_counter()
            outputs.append(model.generate(ids, max_new_tokens=8, eos_token_id=[]))
            times.append(time.perf_counter() - start)
        np.testing.assert_array_equal(outputs[0], cpu_model.generate(ids, max_new_tokens=8, eos_token_id=[]))
        np.testing.assert_array_equal(outputs[1], outputs[0])
        with capsys.disabled():
            print(f"\n{folder.name} L={length}: first call {1e3 * times[0]:.1f} ms, second {1e3 * times[1]:.1f} ms")


def test_prefill_buckets_and_the_warm_up_change_no_token(folder, capsys):
    """Prompts padded to buckets of 32 after a warm-up to 256 tokens give the tokens of a session
    that pads nothing and warms nothing up; the warm-up's time is printed."""
    plain = on_cuda(folder, prefill_bucket=1)
    start = time.perf_counter()
    bucketed = on_cuda(folder, prefill_bucket=32, warm_up_length=256)
    loaded = time.perf_counter() - start
    for length in (3, 40, 100):
        ids = tokens(2, length, seed=length)
        np.testing.assert_array_equal(bucketed.generate(ids, max_new_tokens=8, eos_token_id=[]),
                                      plain.generate(ids, max_new_tokens=8, eos_token_id=[]))
    again = bucketed.warm_up(64)
    with capsys.disabled():
        print(f"\n{folder.name}: load with a warm-up to 256 tokens {loaded:.2f} s; warm-up to 64 again {again:.3f} s")


def test_dependent_launches_change_no_bit(folder):
    """Our kernels launched as programmatic dependents of the kernel before them (the default
    on Hopper, common/dependent_launch.h) give the logits and tokens of plain launches, with
    and without CUDA graphs. Each model is built under its setting, so its graphs capture it."""
    import ctypes

    from mamba_export.runtime.library import get_library_path

    switch = ctypes.CDLL(get_library_path(cuda=True)).mamba_export_ops_set_dependent_launch
    ids, mask, _ = left_padded_batch(4, seed=11)
    kwargs = dict(attention_mask=mask, max_new_tokens=16, eos_token_id=[])
    results = {}
    before = switch(1)
    try:
        for on in (0, 1):
            switch(on)
            for graphs in (True, False):
                model = on_cuda(folder, cuda_graph=None if graphs else False)
                results[on, graphs] = (model.generate(ids, **kwargs), model(ids, mask).logits)
    finally:
        switch(before)
    for graphs in (True, False):
        np.testing.assert_array_equal(results[1, graphs][0], results[0, graphs][0])
        np.testing.assert_array_equal(results[1, graphs][1], results[0, graphs][1])


def test_cuda_graph_decode_equals_the_path_without_graphs(folder):
    graphs, plain = on_cuda(folder), on_cuda(folder, cuda_graph=False)
    if graphs.info["backend"] == "standard":  # its ONNX Scan cannot be captured: graphs stay off
        assert not graphs.options.use_cuda_graph
        with pytest.raises(BackendUnavailableError, match="cuda_graph=False"):
            on_cuda(folder, cuda_graph=True)
        return
    assert graphs.options.use_cuda_graph and not plain.options.use_cuda_graph
    for batch in (1, 4, 1, 4):  # a second visit to a batch size replays the graphs captured on the first
        ids, mask, _ = left_padded_batch(batch, seed=batch)
        kwargs = dict(attention_mask=mask, max_new_tokens=24, eos_token_id=[])
        np.testing.assert_array_equal(graphs.generate(ids, **kwargs), plain.generate(ids, **kwargs))
        sampled = dict(kwargs, do_sample=True, top_k=10, seed=3)
        np.testing.assert_array_equal(graphs.generate(ids, **sampled), plain.generate(ids, **sampled))
    assert sorted(graphs.decode_cache) == [1, 4] and all(graphs.decode_cache[b].captured == [True, True]
                                                         for b in (1, 4))


def test_plain_calls_on_a_graph_session_never_replay(folder, cpu_model):
    """model(ids) at changing lengths runs with gpu_graph_id -1: a replay would return stale shapes.
    Float32 on both providers with TF32 off: the logits differ by rounding only (1e-4 is generous)."""
    model = on_cuda(folder)
    for length in (3, 5, 3, 7, 5):
        ids = tokens(2, length, seed=length)
        got, expected = model(ids), cpu_model(ids)
        assert got.logits.shape == expected.logits.shape
        np.testing.assert_allclose(got.logits, expected.logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("batch", [32, 128])
def test_left_padded_batches_with_graphs_equal_rows_alone(folder, batch):
    model = on_cuda(folder)
    ids, mask, prompts = left_padded_batch(batch, seed=batch)
    out = model.generate(ids, attention_mask=mask, max_new_tokens=12, eos_token_id=[])
    for row, prompt in enumerate(prompts):
        alone = model.generate(prompt[None], max_new_tokens=12, eos_token_id=[])
        np.testing.assert_array_equal(out[row, ids.shape[1]:], alone[0, len(prompt):], err_msg=f"row {row}")


def test_cpu_only_library_is_refused_for_cuda(exported, cpu_only_library):
    with pytest.raises(CustomOpsNotFoundError, match="without CUDA kernels"):
        on_cuda(exported("custom"), library_path=cpu_only_library)


def test_placement_probe_catches_custom_nodes_on_the_cpu(exported, cpu_only_library, monkeypatch):
    """Past the library check (patched out), the CPU-only kernels land on the CPU provider and the
    session is refused: by the probe, or by ONNX Runtime itself when CUDA graphs are on."""
    from mamba_export.runtime import library

    monkeypatch.setattr(library, "check_cuda_kernels", lambda path: None)
    with pytest.raises(BackendUnavailableError, match=r"SelectiveScan \(\d+ nodes\) ran on CPUExecutionProvider"):
        on_cuda(exported("custom"), library_path=cpu_only_library, cuda_graph=False)
    with pytest.raises(BackendUnavailableError):
        on_cuda(exported("custom"), library_path=cpu_only_library)


def test_in_graph_tokens_on_cuda(export_tiny, exported):
    """--next-tokens on the GPU: the argmax inside each captured decode step gives the tokens of the
    export without it (greedy, left-padded batch of 32, CUDA graphs on), and sampling still works."""
    exported("custom")  # the library, or the skip that names it
    plain = on_cuda(export_tiny(backend="custom", logits="last"))
    tokens_model = on_cuda(export_tiny(backend="custom", logits="last", next_tokens=True))
    ids, mask, _ = left_padded_batch(32, seed=3)
    kwargs = dict(attention_mask=mask, max_new_tokens=24, eos_token_id=[])
    expected = plain.generate(ids, **kwargs)
    for _ in range(2):  # the second call replays the captured graphs
        np.testing.assert_array_equal(tokens_model.generate(ids, **kwargs), expected)
    buffers = tokens_model.decode_cache[32]
    assert buffers.in_graph_tokens and all(buffers.captured)
    sampled = tokens_model.generate(ids, do_sample=True, seed=4, **kwargs)
    np.testing.assert_array_equal(sampled, plain.generate(ids, do_sample=True, seed=4, **kwargs))


def test_reading_tokens_in_groups_gives_the_tokens_of_reading_after_each_step(export_tiny, exported):
    """Greedy generate() on a --next-tokens export reads the tokens the graph chose once every 16 steps
    (the CUDA default, runtime/token_ring.py): the same tokens, end-of-text and streaming as reading
    them after every step, with CUDA graphs (one per ring row), at batch 32 and 1."""
    exported("custom")  # the library, or the skip that names it
    folder = export_tiny(backend="custom", logits="last", next_tokens=True)
    grouped, each = on_cuda(folder), on_cuda(folder, read_tokens_every=1)
    assert grouped.options.token_read_interval == DEFAULT_READ_TOKENS_EVERY
    for batch in (32, 1):
        ids, mask, _ = left_padded_batch(batch, seed=6)
        free = each.generate(ids, attention_mask=mask, max_new_tokens=20, eos_token_id=[])
        for eos in ([], [int(free[0, -15])], sorted({int(t) for t in free[:, ids.shape[1] + 2]})):
            kwargs = dict(attention_mask=mask, max_new_tokens=20, eos_token_id=eos)
            streamed = []
            out = grouped.generate(ids, on_tokens=streamed.append, **kwargs)
            np.testing.assert_array_equal(out, each.generate(ids, **kwargs))
            np.testing.assert_array_equal(np.stack(streamed, axis=1), out[:, ids.shape[1]:])
        buffers = grouped.decode_cache[batch]
        assert buffers.slots == DEFAULT_READ_TOKENS_EVERY and all(buffers.captured)
        assert each.decode_cache[batch].slots == 2
