"""Every command end to end through the real entry point (a subprocess), on a tiny local model.

Covers the success paths (export with its check, info, generate from --prompt, standard
input and --ids, check with --json) and every user error the exporter names: an
unsupported model type, a missing or corrupt checkpoint, an unwritable output, an
existing output without --force, and a custom-op library that is not built.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tiny_models import save_tiny_model

SHARED_TOKENIZER = Path(__file__).resolve().parents[3] / "shared/data/gpt-neox-20b-tokenizer.json"


def run_cli(*args, input_text=None, env=None):
    return subprocess.run([sys.executable, "-m", "mamba_export", *map(str, args)], capture_output=True,
                          text=True, input=input_text, env=env, timeout=900)


def one_line_error(result, *fragments):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("mamba-export "), result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


@pytest.fixture(scope="module")
def cli_export(tmp_path_factory, ops_library_for_cli):
    """A tiny model exported with the CLI (custom backend, check on)."""
    source = save_tokenizer_sized_model(tmp_path_factory.mktemp("cli_src") / "model")
    out = tmp_path_factory.mktemp("cli_out") / "export"
    result = run_cli("export", "--model", source, out, "--quiet")
    assert result.returncode == 0, result.stderr
    return source, out, result


def save_tokenizer_sized_model(folder: Path, seed: int = 1) -> Path:
    """A tiny model whose vocabulary covers the GPT-NeoX tokenizer, saved with it when it is available."""
    import torch
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(seed)
    config = MambaConfig(vocab_size=50280, hidden_size=16, state_size=8, num_hidden_layers=2, expand=2,
                         conv_kernel=4, tie_word_embeddings=False, pad_token_id=0, bos_token_id=0,
                         eos_token_id=0)
    MambaForCausalLM(config).eval().save_pretrained(folder)
    if SHARED_TOKENIZER.is_file():
        shutil.copy(SHARED_TOKENIZER, folder / "tokenizer.json")
    return folder


@pytest.fixture(scope="module")
def ops_library_for_cli():
    from mamba_export.runtime.library import build_library

    return build_library()


def test_export_writes_a_checked_folder(cli_export):
    _, out, result = cli_export
    assert f"exported to {out}" in result.stdout
    info = json.loads((out / "export_info.json").read_text())
    assert info["backend"] == "custom" and info["parity"]["passed"] is True
    assert (out / "model.onnx").is_file() and (out / "config.json").is_file()


def test_info_describes_the_folder(cli_export):
    _, out, _ = cli_export
    result = run_cli("info", out)
    assert result.returncode == 0, result.stderr
    assert "backend      custom" in result.stdout and "present.0.ssm_state" in result.stdout
    assert "nodes        7 per layer (2 layers), 3 outside" in result.stdout
    as_json = json.loads(run_cli("info", out, "--json").stdout)
    assert as_json["op_domain"] == "mamba_export"


def test_info_library_prints_the_path_and_whether_it_has_cuda_kernels(ops_library_for_cli):
    """The library answers itself (runtime.library.has_cuda_kernels): the CPU build says no, and the
    CUDA build that .ci/run compiles where nvcc is says yes."""
    from mamba_export.runtime.library import ENV_VAR, LIBRARY_NAME, repo_root

    builds = [(Path(ops_library_for_cli), False)]  # build_library() builds the CPU kernels only
    cuda_build = repo_root() / "build" / "custom_ops_cuda" / LIBRARY_NAME
    if cuda_build.is_file():
        builds.append((cuda_build, True))
    for path, cuda in builds:
        env = {**os.environ, ENV_VAR: str(path)}
        plain = run_cli("info", "--library", env=env)
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout.strip() == str(path.resolve())
        described = json.loads(run_cli("info", "--library", "--json", env=env).stdout)
        assert described == {"path": str(path.resolve()), "cuda_kernels": cuda}
    if not cuda_build.is_file():
        pytest.skip(f"the CPU build is told apart; no CUDA build at {cuda_build} to check the other answer "
                    "(scripts/build_custom_ops.sh --cuda --build-dir build/custom_ops_cuda makes one)")


def test_info_library_missing_and_info_without_folder_are_one_line_errors(tmp_path):
    env = {**os.environ, "MAMBA_EXPORT_OPS_LIBRARY": str(tmp_path / "missing.so")}
    one_line_error(run_cli("info", "--library", env=env), "missing.so", "mamba-export build-ops")
    one_line_error(run_cli("info"), "no folder given", "--library")


def test_generate_from_ids_matches_the_python_runtime(cli_export):
    import numpy as np

    from mamba_export.runtime.model import ORTMambaForCausalLM

    _, out, _ = cli_export
    result = run_cli("generate", out, "--ids", "3,4,5", "--max-new-tokens", "6")
    assert result.returncode == 0, result.stderr
    expected = ORTMambaForCausalLM.from_pretrained(out).generate(np.array([[3, 4, 5]]), max_new_tokens=6)
    assert result.stdout.split() == [str(t) for t in expected[0]]


@pytest.mark.skipif(not SHARED_TOKENIZER.is_file(), reason="shared GPT-NeoX tokenizer not beside the checkout")
def test_generate_reads_the_prompt_from_standard_input(cli_export):
    _, out, _ = cli_export
    piped = run_cli("generate", out, "--max-new-tokens", "4", input_text="Plants create energy\n")
    given = run_cli("generate", out, "--max-new-tokens", "4", "--prompt", "Plants create energy")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith("Plants create energy")
    assert piped.stdout == given.stdout


def test_a_rejected_prompt_prints_only_the_error(cli_export):
    """The prompt is echoed once the model has taken it: a bad id leaves stdout empty."""
    _, out, _ = cli_export
    result = run_cli("generate", out, "--ids", "1,2,99999", "--max-new-tokens", "3")
    one_line_error(result, "99999")
    assert result.stdout == ""


def test_no_new_tokens_prints_the_prompt(cli_export):
    _, out, _ = cli_export
    result = run_cli("generate", out, "--ids", "3,4,5", "--max-new-tokens", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "3 4 5\n"


def test_generate_without_prompt_or_tokenizer_says_what_to_pass(cli_export, tmp_path):
    _, out, _ = cli_export
    copy = tmp_path / "no_tokenizer"
    shutil.copytree(out, copy)
    (copy / "tokenizer.json").unlink(missing_ok=True)
    one_line_error(run_cli("generate", copy, "--prompt", "hi"), "no tokenizer at", "--ids")


def test_check_passes_and_writes_json(cli_export, tmp_path):
    source, out, _ = cli_export
    report_path = tmp_path / "report.json"
    result = run_cli("check", out, "--model", source, "--json", report_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    assert report["passed"] is True


def test_check_fails_with_non_zero_exit_on_a_wrong_reference(cli_export, tmp_path):
    _, out, _ = cli_export
    other = save_tokenizer_sized_model(tmp_path / "other", seed=7)
    result = run_cli("check", out, "--model", other)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout


def test_unsupported_model_type_names_the_supported_ones(tmp_path):
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    one_line_error(run_cli("export", "--model", folder, tmp_path / "out", "--no-check"), "gpt2", "mamba")
    assert not (tmp_path / "out").exists()


def test_missing_checkpoint_is_named(tmp_path):
    one_line_error(run_cli("export", "--model", tmp_path / "absent", tmp_path / "out"), "absent")


def test_corrupt_checkpoint_is_named(tmp_path):
    source = save_tiny_model(tmp_path / "model", "default")
    weights = next(source.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    one_line_error(run_cli("export", "--model", source, tmp_path / "out", "--no-check"))
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_force(cli_export, tmp_path):
    source, _, _ = cli_export
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    one_line_error(run_cli("export", "--model", source, out, "--no-check", "--quiet"), "--force")
    assert (out / "keep.txt").read_text() == "precious"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere, so a read-only folder proves nothing")
def test_unwritable_output_is_named(cli_export, tmp_path):
    source, _, _ = cli_export
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    one_line_error(run_cli("export", "--model", source, locked / "out", "--no-check", "--quiet"), "locked")


def test_output_under_a_file_is_unwritable(cli_export, tmp_path):
    source, _, _ = cli_export
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    one_line_error(run_cli("export", "--model", source, blocker / "out", "--no-check", "--quiet"), "a_file")


def test_missing_custom_op_library_says_how_to_build(cli_export, tmp_path):
    _, out, _ = cli_export
    env = {**os.environ, "MAMBA_EXPORT_OPS_LIBRARY": str(tmp_path / "missing.so")}
    one_line_error(run_cli("generate", out, "--ids", "1,2", env=env), "build-ops")


def test_generate_prints_tokens_as_they_come(cli_export):
    """With a practically endless --max-new-tokens, tokens appear while the command still runs."""
    import select
    import time

    _, out, _ = cli_export
    command = [sys.executable, "-m", "mamba_export", "generate", str(out), "--ids", "3,4,5",
               "--max-new-tokens", "100000000", "--seed", "1", "--do-sample"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=0)
    seen, deadline = "", time.monotonic() + 120
    try:
        while len(seen.split()) < 3 + 5 and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 1.0)
            if ready:
                seen += os.read(process.stdout.fileno(), 4096).decode()
        assert process.poll() is None, "generate ended instead of streaming"
    finally:
        process.kill()
        process.wait(timeout=30)
    assert seen.split()[:3] == ["3", "4", "5"] and len(seen.split()) >= 8, seen
