"""generate(): greedy against PyTorch, sampling, EOS, padding, settings, and the decoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mamba_export.errors import BackendUnavailableError, InputShapeError, MambaExportError
from mamba_export.runtime.generation import GenerationSettings, HostDecoder, generate, warm_up
from mamba_export.runtime.inputs import bucket_step, pad_left_to_bucket
from mamba_export.runtime.io_binding import WARMUP_RUNS, Device, DeviceDecoder
from mamba_export.runtime.model import ORTMambaForCausalLM
from tests.support.prompts import left_padded_batch, tokens

BACKENDS = ["standard", "custom"]


def torch_greedy(model, ids, count):
    """Greedy continuation by one full forward per token (exact, no cache)."""
    ids = torch.as_tensor(ids)
    with torch.no_grad():
        for _ in range(count):
            ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids.numpy()


@pytest.fixture(scope="module", params=BACKENDS)
def model(request, exported):
    return ORTMambaForCausalLM.from_pretrained(exported(request.param))


def test_greedy_matches_pytorch(model, reference_model):
    ids = tokens(2, 5, seed=1)
    out = model.generate(ids, max_new_tokens=24, eos_token_id=[])
    assert out.shape == (2, 29) and out.dtype == np.int64
    np.testing.assert_array_equal(out, torch_greedy(reference_model, ids, 24))


def test_left_padded_batch_generates_as_rows_alone(model):
    long, short = tokens(1, 7, seed=2)[0], tokens(1, 3, seed=3)[0]
    ids = np.stack([long, np.concatenate([[0, 0, 0, 0], short])])
    mask = np.array([[1] * 7, [0, 0, 0, 0, 1, 1, 1]])
    kwargs = dict(max_new_tokens=12, eos_token_id=[])
    out = model.generate(ids, attention_mask=mask, **kwargs)
    np.testing.assert_array_equal(out[0], model.generate(long[None], **kwargs)[0])
    np.testing.assert_array_equal(out[1, 4:], model.generate(short[None], **kwargs)[0])


def test_sampling_is_reproducible_with_a_seed(model):
    ids = tokens(2, 4, seed=4)
    kwargs = dict(max_new_tokens=20, do_sample=True, temperature=1.5, eos_token_id=[])
    first = model.generate(ids, seed=11, **kwargs)
    np.testing.assert_array_equal(first, model.generate(ids, seed=11, **kwargs))
    assert (first != model.generate(ids, seed=12, **kwargs)).any()


def test_top_k_one_is_greedy(model):
    ids = tokens(2, 4, seed=5)
    greedy = model.generate(ids, max_new_tokens=16, eos_token_id=[])
    sampled = model.generate(ids, max_new_tokens=16, do_sample=True, top_k=1, temperature=3.0, seed=0,
                             eos_token_id=[])
    np.testing.assert_array_equal(sampled, greedy)


def test_tiny_top_p_is_greedy(model):
    ids = tokens(1, 4, seed=6)
    greedy = model.generate(ids, max_new_tokens=10, eos_token_id=[])
    sampled = model.generate(ids, max_new_tokens=10, do_sample=True, top_p=1e-6, seed=0, eos_token_id=[])
    np.testing.assert_array_equal(sampled, greedy)


def test_eos_stops_a_row_and_pads_it(model):
    ids = tokens(2, 4, seed=7)
    free = model.generate(ids, max_new_tokens=12, eos_token_id=[])
    eos = int(free[0, 4 + 2])  # row 0 produces this token at its third step
    out = model.generate(ids, max_new_tokens=12, eos_token_id=eos, pad_token_id=60)
    first_eos = int(np.flatnonzero(free[0, 4:] == eos)[0])
    np.testing.assert_array_equal(out[0, :4 + first_eos + 1], free[0, :4 + first_eos + 1])
    assert (out[0, 4 + first_eos + 1:] == 60).all()
    row1_eos = np.flatnonzero(free[1, 4:] == eos)
    stop = 12 if row1_eos.size == 0 else int(row1_eos[0]) + 1
    np.testing.assert_array_equal(out[1, :4 + stop], free[1, :4 + stop])


def test_generation_stops_when_every_row_finished(model):
    ids = tokens(1, 4, seed=8)
    free = model.generate(ids, max_new_tokens=8, eos_token_id=[])
    out = model.generate(ids, max_new_tokens=8, eos_token_id=[int(free[0, 4])])
    np.testing.assert_array_equal(out, free[:, :5])


def test_on_tokens_sees_each_step_as_it_is_chosen(model):
    ids = tokens(2, 4, seed=9)
    steps = []
    out = model.generate(ids, max_new_tokens=6, eos_token_id=[], on_tokens=lambda t: steps.append(t.copy()))
    assert len(steps) == 6 and all(step.shape == (2,) for step in steps)
    np.testing.assert_array_equal(np.stack(steps, axis=1), out[:, 4:])


def test_eos_defaults_to_the_folder_generation_config(model):
    assert model.folder.special_token("eos_token_id") == 0
    ids = tokens(1, 3, seed=9)
    np.testing.assert_array_equal(model.generate(ids, max_new_tokens=30),
                                  model.generate(ids, max_new_tokens=30, eos_token_id=0))


def test_zero_new_tokens_returns_the_prompt(model):
    ids = tokens(2, 3)
    np.testing.assert_array_equal(model.generate(ids, max_new_tokens=0), ids)


def test_right_padding_is_refused(model):
    with pytest.raises(InputShapeError, match="left padding"):
        model.generate(tokens(1, 3), attention_mask=np.array([[1, 1, 0]]))
    with pytest.raises(InputShapeError, match="all zeros"):
        model.generate(tokens(1, 3), attention_mask=np.array([[0, 0, 0]]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(do_sample=True, temperature=0.0), "temperature"),
    (dict(top_k=-2), "top_k"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(MambaExportError, match=match):
        GenerationSettings.create(**kwargs)


def test_pad_defaults_to_eos():
    assert GenerationSettings.create(eos_token_id=[7, 9]).pad_token_id == 7
    assert GenerationSettings.create(eos_token_id=3, pad_token_id=5).eos_token_ids == (3,)


def _left_padded_rows(rows: int, length: int, seed: int, padding: int):
    """tokens(rows, length) with the second row's first ``padding`` positions masked."""
    ids = tokens(rows, length, seed=seed)
    mask = np.ones_like(ids)
    mask[1, :padding] = 0
    return ids, mask


def _sampled_and_greedy(max_new_tokens: int, seed: int) -> list:
    return [GenerationSettings.create(max_new_tokens=max_new_tokens, do_sample=do_sample, top_k=8, seed=seed,
                                      eos_token_id=[]) for do_sample in (True, False)]


def test_device_decoder_double_buffering_matches_host(model):
    """The CUDA decoder's A/B state buffers, fixed bindings and token head, run on CPU OrtValues."""
    ids, mask = _left_padded_rows(3, 6, seed=10, padding=2)
    for settings in _sampled_and_greedy(9, seed=5):
        expected = generate(HostDecoder(model), ids, mask, settings)
        cache = {}
        for _ in range(2):  # the second call reuses the buffers of the first
            decoder = DeviceDecoder(model, cache, Device("cpu"))
            np.testing.assert_array_equal(generate(decoder, ids, mask, settings), expected)
        short = generate(DeviceDecoder(model, cache, Device("cpu")), ids[:1], mask[:1], settings)
        np.testing.assert_array_equal(short, generate(HostDecoder(model), ids[:1], mask[:1], settings))
        assert sorted(cache) == [1, 3]
        assert cache[3].graph_ids == (1, 2) and cache[1].graph_ids == (3, 4)


def test_pad_left_to_bucket():
    ids, mask = np.array([[5, 6, 7]]), np.array([[0, 1, 1]])
    padded, padded_mask = pad_left_to_bucket(ids, mask, 4, pad_id=9)
    np.testing.assert_array_equal(padded, [[9, 5, 6, 7]])
    np.testing.assert_array_equal(padded_mask, [[0, 0, 1, 1]])
    same = pad_left_to_bucket(padded, padded_mask, 4)
    assert same[0] is padded and same[1] is padded_mask
    assert pad_left_to_bucket(ids, mask, 1)[0] is ids
    assert pad_left_to_bucket(ids, mask, 64)[0].shape == (1, 64)


@pytest.mark.parametrize("batch, length, bucket, padded", [
    (1, 3, 64, 64), (1, 65, 64, 128), (2, 3, 64, 32), (3, 17, 64, 64), (32, 16, 64, 16), (32, 17, 64, 18),
    (128, 16, 64, 16), (128, 1, 64, 1), (4, 10, 48, 12), (5, 0, 64, 0)])
def test_buckets_pad_batch_times_length_to_a_multiple_with_the_fewest_positions(batch, length, bucket, padded):
    ids = np.arange(batch * length, dtype=np.int64).reshape(batch, length) + 1
    out, out_mask = pad_left_to_bucket(ids, np.ones_like(ids), bucket)
    assert out.shape == (batch, padded) and (batch * padded) % bucket == 0
    # No shorter padding would do, and the prompt itself sits at the right end, unmasked.
    assert all((batch * shorter) % bucket for shorter in range(length, padded))
    np.testing.assert_array_equal(out[:, padded - length:], ids)
    assert out_mask[:, :padded - length].sum() == 0 and out_mask[:, padded - length:].all()
    assert bucket_step(batch, bucket) * batch % bucket == 0


@pytest.mark.parametrize("bucket", [1, 8, 64])
def test_prefill_buckets_pad_the_prompt_and_change_no_token(model, bucket):
    """generate() on the device decoder pads each prompt on the left so that batch x length is a
    multiple of the bucket; the masked positions leave the states at zero, so every token is the
    host decoder's."""
    ids, mask = _left_padded_rows(2, 5, seed=21, padding=3)
    for settings in _sampled_and_greedy(8, seed=3):
        expected = generate(HostDecoder(model), ids, mask, settings)
        decoder = DeviceDecoder(model, {}, Device("cpu"), bucket=bucket)
        assert decoder.bucket == bucket
        np.testing.assert_array_equal(generate(decoder, ids, mask, settings), expected)
    decoder.prefill(ids, mask)
    step = bucket_step(ids.shape[0], bucket)
    padded = -(-ids.shape[1] // step) * step
    assert decoder.pending.shape()[1] == model.runner.head_positions(padded)


def test_the_device_decoder_takes_its_bucket_from_the_options(model):
    assert DeviceDecoder(model, {}, Device("cpu")).bucket == model.options.prefill_multiple == 1


def test_warm_up_reads_every_bucket_longest_first(model, monkeypatch):
    decoder = DeviceDecoder(model, {}, Device("cpu"), bucket=4)
    read = []
    real_prefill = decoder.prefill
    monkeypatch.setattr(decoder, "prefill", lambda ids, mask: read.append(ids.shape) or real_prefill(ids, mask))
    assert warm_up(decoder, 10) == [12, 8, 4]
    assert read == [(1, 12), (1, 8), (1, 4)]
    with pytest.raises(MambaExportError, match="warm-up length must be >= 1"):
        warm_up(decoder, 0)
    # the decoder serves as before
    ids = tokens(1, 6, seed=4)
    settings = GenerationSettings.create(max_new_tokens=5, eos_token_id=[])
    np.testing.assert_array_equal(generate(decoder, ids, np.ones_like(ids), settings),
                                  generate(HostDecoder(model), ids, np.ones_like(ids), settings))


def test_warm_up_needs_the_device_decoder(model):
    with pytest.raises(MambaExportError, match="warm_up\\(\\) applies to provider='cuda'"):
        model.warm_up(64)


def test_device_decoder_capture_bookkeeping(model):
    """With graphs on, each binding's first step adds warm-up runs; repeating a run that reads one
    state set and writes the other changes nothing (the CPU provider ignores the graph ids)."""
    ids = tokens(2, 5, seed=13)
    settings = GenerationSettings.create(max_new_tokens=7, eos_token_id=[])
    expected = generate(HostDecoder(model), ids, np.ones_like(ids), settings)
    cache = {}
    decoder = DeviceDecoder(model, cache, Device("cpu"), use_graph=True)
    runs = []
    real_run = model.session.run_with_iobinding
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model.session, "run_with_iobinding",
                      lambda binding, options=None: runs.append(options) or real_run(binding, options))
        np.testing.assert_array_equal(generate(decoder, ids, np.ones_like(ids), settings), expected)
        assert cache[2].captured == [True, True]
        first = len(runs)
        np.testing.assert_array_equal(generate(DeviceDecoder(model, cache, Device("cpu"), use_graph=True),
                                               ids, np.ones_like(ids), settings), expected)
    # prefill + 6 steps, plus 2 warm-up runs for each of the two bindings the first time only
    assert first == 1 + 6 + 2 * WARMUP_RUNS and len(runs) - first == 1 + 6


def test_a_refused_capture_is_a_clear_error(model, monkeypatch):
    real_run = model.session.run_with_iobinding

    def run(binding, options=None):
        if options is not None and options.get_run_config_entry("gpu_graph_id") not in ("", "-1"):
            raise RuntimeError("operation not permitted when stream is capturing")
        return real_run(binding, options)

    monkeypatch.setattr(model.session, "run_with_iobinding", run)
    cache = {}
    decoder = DeviceDecoder(model, cache, Device("cpu"), use_graph=True)
    settings = GenerationSettings.create(max_new_tokens=3, eos_token_id=[])
    ids = tokens(1, 4)
    with pytest.raises(BackendUnavailableError, match=r"batch 1 in a CUDA graph \(id 1\).*cuda_graph=False"):
        generate(decoder, ids, np.ones_like(ids), settings)
    assert cache[1].captured == [False, False]


def test_eos_rows_overwrite_the_device_tokens(model):
    """A finished row's pad token replaces the head's argmax in the device input buffer."""
    ids = tokens(2, 4, seed=7)
    free = model.generate(ids, max_new_tokens=12, eos_token_id=[])
    eos = int(free[0, 4 + 2])
    settings = GenerationSettings.create(max_new_tokens=12, eos_token_id=eos, pad_token_id=60)
    mask = np.ones_like(ids)
    np.testing.assert_array_equal(generate(DeviceDecoder(model, {}, Device("cpu")), ids, mask, settings),
                                  generate(HostDecoder(model), ids, mask, settings))


@pytest.mark.parametrize("batch", [32, 128])
def test_left_padded_batches_on_the_device_path_equal_rows_alone(model, batch):
    """Batch 32 and 128 through the IO-binding decoder (CPU OrtValues): each row's greedy
    continuation is the one it gets alone."""
    ids, mask, prompts = left_padded_batch(batch, seed=batch)
    settings = GenerationSettings.create(max_new_tokens=6, eos_token_id=[])
    cache = {}
    out = generate(DeviceDecoder(model, cache, Device("cpu"), use_graph=True), ids, mask, settings)
    for row, prompt in enumerate(prompts):
        alone = generate(DeviceDecoder(model, cache, Device("cpu"), use_graph=True), prompt[None],
                         np.ones((1, len(prompt)), np.int64), settings)
        np.testing.assert_array_equal(out[row, ids.shape[1]:], alone[0, len(prompt):], err_msg=f"row {row}")


def _cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(),
                    reason="needs onnxruntime-gpu with CUDAExecutionProvider and a GPU")
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_cuda_generation_matches_cpu(exported, cuda_graph):
    from mamba_export.errors import BackendUnavailableError
    from mamba_export.options import RuntimeOptions

    folder = exported("custom")
    cpu = ORTMambaForCausalLM.from_pretrained(folder)
    options = RuntimeOptions(provider="cuda", cuda_graph=cuda_graph)
    try:
        gpu = ORTMambaForCausalLM.from_pretrained(folder, options=options)
    except BackendUnavailableError as error:
        if cuda_graph and "CUDA graphs" in str(error):
            pytest.skip(f"onnxruntime cannot capture this graph: {error}")
        raise
    ids = tokens(2, 6, seed=12)
    for _ in range(2):  # the second run replays the captured graphs
        np.testing.assert_array_equal(gpu.generate(ids, max_new_tokens=16, eos_token_id=[]),
                                      cpu.generate(ids, max_new_tokens=16, eos_token_id=[]))
