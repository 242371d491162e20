"""The command line on FalconMamba and base-model checkpoints saved with save_pretrained:
export (with its check) on both backends, info, check, generate, and the clear refusal to
generate from a base model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli.test_commands import one_line_error, run_cli
from tests.support.checkpoint_kinds import save_base_model, save_falcon_causal_lm


@pytest.fixture(scope="module")
def falcon_dir(tmp_path_factory):
    return save_falcon_causal_lm(tmp_path_factory.mktemp("falcon_cli") / "saved")


@pytest.fixture(scope="module")
def base_export(tmp_path_factory):
    source = save_base_model(tmp_path_factory.mktemp("base_cli") / "saved")
    out = tmp_path_factory.mktemp("base_cli_out") / "export"
    result = run_cli("export", "--model", source, out, "--backend", "standard", "--quiet")
    assert result.returncode == 0, result.stderr
    return source, out


@pytest.mark.parametrize("backend", ["standard", "custom"])
def test_falcon_exports_checks_and_generates(falcon_dir, tmp_path, backend):
    if backend == "custom":
        from mamba_export.runtime.library import build_library

        build_library()
    out = tmp_path / "export"
    result = run_cli("export", "--model", falcon_dir, out, "--backend", backend, "--quiet")
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "export_info.json").read_text())
    assert info["parity"]["passed"] is True and info["head_output"] == "logits"

    generated = run_cli("generate", out, "--ids", "3,17,5,42", "--max-new-tokens", "6")
    assert generated.returncode == 0, generated.stderr
    from mamba_export.runtime.model import ORTMambaForCausalLM

    expected = ORTMambaForCausalLM.from_pretrained(out).generate(np.array([[3, 17, 5, 42]]), max_new_tokens=6)
    assert generated.stdout.split() == [str(t) for t in expected[0]]


def test_falcon_info_and_check(falcon_dir, tmp_path):
    out = tmp_path / "export"
    assert run_cli("export", "--model", falcon_dir, out, "--backend", "standard", "--no-check",
                   "--quiet").returncode == 0
    described = run_cli("info", out)
    assert described.returncode == 0, described.stderr
    assert "FalconMambaForCausalLM" in described.stdout and "logits (causal LM" in described.stdout
    checked = run_cli("check", out)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "FAIL" not in checked.stdout


def test_base_model_info(base_export):
    _, out = base_export
    result = run_cli("info", out)
    assert result.returncode == 0, result.stderr
    assert "last_hidden_state (base model" in result.stdout
    assert "MambaModel" in result.stdout


def test_base_model_check_passes(base_export):
    source, out = base_export
    result = run_cli("check", out, "--model", source)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "last_hidden_state" in result.stdout


def test_base_model_cannot_generate(base_export):
    _, out = base_export
    result = run_cli("generate", out, "--ids", "1,2,3")
    one_line_error(result, "base-model export", "last_hidden_state", "cannot generate")
