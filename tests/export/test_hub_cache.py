"""Exporting by hub id from a local Hugging Face cache, offline, through the command line.

The cache is laid out as the hub client writes it (``HF_HOME/hub/models--ORG--NAME/``
with ``snapshots/REV/`` and ``refs/BRANCH``), ``HF_HUB_OFFLINE=1`` keeps the network
out, and the CLI runs in a subprocess so the environment is read as a user's would
be. Each error case must give one clear line and leave no folder behind.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from tests.cli.test_commands import one_line_error, run_cli
from tests.support.tiny_models import save_tiny_model, tiny_model

MAIN = "a" * 40
SECOND = "b" * 40
FLOAT32_GRAPH = 1e-4


def add_repo(hub: "os.PathLike", repo_id: str, snapshots: dict, refs: dict):
    """snapshots: revision -> function(folder) filling it; refs: branch -> revision."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    for revision, fill in snapshots.items():
        folder = repo / "snapshots" / revision
        folder.mkdir(parents=True)
        fill(folder)
    (repo / "refs").mkdir(parents=True)
    for branch, revision in refs.items():
        (repo / "refs" / branch).write_text(revision)


def config_only(model_type: str):
    def fill(folder):
        tiny_model("untied_head").config.save_pretrained(folder)
        if model_type != "mamba":
            config = {"model_type": model_type, "architectures": ["LlamaForCausalLM"], "hidden_size": 16,
                      "num_attention_heads": 2, "num_key_value_heads": 2, "intermediate_size": 32,
                      "num_hidden_layers": 1, "vocab_size": 61}
            (folder / "config.json").write_text(json.dumps(config))
    return fill


def broken_llama_config(folder):
    """A config whose values contradict each other (16 wide, 32 heads)."""
    config = {"model_type": "llama", "hidden_size": 16, "num_attention_heads": 32, "vocab_size": 61}
    (folder / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf_home")
    hub = home / "hub"
    add_repo(hub, "tiny-org/tiny-mamba",
             {MAIN: lambda f: save_tiny_model(f, "untied_head", seed=1),
              SECOND: lambda f: save_tiny_model(f, "untied_head", seed=2)},
             {"main": MAIN, "v2": SECOND})
    add_repo(hub, "tiny-org/tiny-llama", {MAIN: config_only("llama")}, {"main": MAIN})
    add_repo(hub, "tiny-org/no-weights", {MAIN: config_only("mamba")}, {"main": MAIN})
    add_repo(hub, "tiny-org/broken-config", {MAIN: broken_llama_config}, {"main": MAIN})
    return home


@pytest.fixture(scope="module")
def env(hf_home):
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    return {**keep, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}


def logits_of(folder, ids):
    from mamba_export.runtime.model import ORTMambaForCausalLM

    return ORTMambaForCausalLM.from_pretrained(folder)(ids).logits


def expected_logits(seed, ids):
    with torch.no_grad():
        return tiny_model("untied_head", seed=seed).double()(torch.as_tensor(ids)).logits.numpy()


def rel(actual, expected) -> float:
    return float(np.abs(np.asarray(actual, np.float64) - expected).max() / np.abs(expected).max())


IDS = np.random.default_rng(0).integers(0, 61, (1, 7))


def test_export_by_hub_id(env, tmp_path):
    out = tmp_path / "export"
    result = run_cli("export", "--model", "tiny-org/tiny-mamba", out, "--backend", "standard", "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "export_info.json").read_text())
    assert info["source"]["model"] == "tiny-org/tiny-mamba" and info["parity"]["passed"] is True
    assert rel(logits_of(out, IDS), expected_logits(1, IDS)) < FLOAT32_GRAPH  # refs/main's snapshot
    assert rel(logits_of(out, IDS), expected_logits(2, IDS)) > 1e-2  # the guard: the snapshots differ


@pytest.mark.parametrize("revision", ["v2", SECOND])
def test_export_at_a_revision(env, tmp_path, revision):
    out = tmp_path / "export"
    result = run_cli("export", "--model", "tiny-org/tiny-mamba", out, "--backend", "standard", "--no-check",
                     "--revision", revision, "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "export_info.json").read_text())["source"]["revision"] == revision
    assert rel(logits_of(out, IDS), expected_logits(2, IDS)) < FLOAT32_GRAPH


def assert_refused(env, tmp_path, *args, fragments):
    out = tmp_path / "nested" / "export"
    result = run_cli("export", "--model", *args, out, "--quiet", env=env)
    one_line_error(result, *fragments)
    assert not (tmp_path / "nested").exists(), list(tmp_path.rglob("*"))


def test_unknown_id(env, tmp_path):
    assert_refused(env, tmp_path, "tiny-org/no-such-model", fragments=["tiny-org/no-such-model",
                                                                       "neither a local model folder"])


def test_unknown_revision(env, tmp_path):
    assert_refused(env, tmp_path, "tiny-org/tiny-mamba", "--revision", "v9",
                   fragments=["'tiny-org/tiny-mamba' at revision 'v9'"])


def test_non_mamba_architecture(env, tmp_path):
    assert_refused(env, tmp_path, "tiny-org/tiny-llama", fragments=["model type 'llama' is not supported",
                                                                    "mamba"])


def test_missing_weights_file(env, tmp_path):
    assert_refused(env, tmp_path, "tiny-org/no-weights", fragments=["cannot load the weights of",
                                                                    "tiny-org/no-weights"])


def test_contradictory_config(env, tmp_path):
    assert_refused(env, tmp_path, "tiny-org/broken-config", fragments=["'tiny-org/broken-config' is neither",
                                                                       "not a multiple"])
