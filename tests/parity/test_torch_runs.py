"""The PyTorch baseline runs: decode through the cache, cache states, dtypes.

Decode one token at a time and the full forward are the same float32
computation in a different order: 1e-5 relative is far above their rounding
(about 1e-7) and far below what a wrong cache would give.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mamba_export.parity import hf_cache
from mamba_export.parity.oracle import Float64Mamba
from mamba_export.parity.torch_runs import BaselineUnavailable, TorchRunner
from tests.support.tiny_models import tiny_model


def rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def tokens(batch, length, seed=0):
    return np.random.default_rng(seed).integers(0, 61, (batch, length))


def test_decode_steps_match_the_full_forward(reference_model):
    runner = TorchRunner(reference_model, torch.float32, with_head=True)
    ids = tokens(2, 12, seed=1)
    steps = runner.decode(ids, prompt_length=5)
    assert steps.shape == (2, 7, 61) and steps.dtype == np.float64
    assert rel(steps, runner.full(ids)[:, 5:]) < 1e-5


def test_states_are_in_the_graph_layout(reference_model):
    runner = TorchRunner(reference_model, torch.float32, with_head=True)
    ids = tokens(2, 9, seed=2)
    states = runner.states(ids)
    _, oracle_states = Float64Mamba(reference_model)(ids)
    assert len(states) == 2
    for (conv, ssm), (conv64, ssm64) in zip(states, oracle_states, strict=True):
        assert conv.shape == (2, 32, 3) and ssm.shape == (2, 32, 8)
        assert rel(conv, conv64.numpy()) < 1e-5 and rel(ssm, ssm64.numpy()) < 1e-5


def test_other_dtypes_copy_the_model(reference_model):
    runner = TorchRunner(reference_model, torch.float16, with_head=True)
    assert next(runner.model.parameters()).dtype == torch.float16
    assert next(reference_model.parameters()).dtype == torch.float32  # the caller's model is untouched
    assert TorchRunner(reference_model, torch.float32, with_head=True).model is reference_model


def test_base_model_gives_hidden_states():
    model = tiny_model(base=True)
    runner = TorchRunner(model, torch.float32, with_head=False)
    assert runner.full(tokens(1, 3)).shape == (1, 3, 16)
    causal = TorchRunner(tiny_model(), torch.float32, with_head=False)  # the backbone of a causal LM
    assert causal.full(tokens(1, 3)).shape == (1, 3, 16)


def test_a_missing_cache_is_an_error_not_a_run_without_history(reference_model, monkeypatch):
    runner = TorchRunner(reference_model, torch.float32, with_head=True)
    monkeypatch.setattr(hf_cache, "output_cache", lambda output: None)
    with pytest.raises(BaselineUnavailable, match="no cache"):
        runner.decode(tokens(1, 6), prompt_length=3)
    with pytest.raises(BaselineUnavailable, match="no cache"):
        runner.states(tokens(1, 6))
