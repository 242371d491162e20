"""scripts/bench_baselines.py without a GPU: its arguments, its table, and its error when a baseline is missing.

The measurements themselves need CUDA and the mamba-ssm wheels (scripts/gpu_round.sh, ROUND_STEPS=baselines).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_baselines.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_baselines", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args, pythonpath=None):
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


def test_defaults_are_the_issue_s_figures(bench):
    args = bench.parse_args([])
    assert args.models == ["130m", "1.4b"] and args.batches == [1, 32] and args.lengths == [2048]
    assert args.rows == list(bench.ROWS) and args.decode_tokens == 64 and args.json is None
    assert bench.MODELS["1.4b"] == {"d_model": 2048, "n_layer": 48}


def test_options_are_parsed(bench):
    args = bench.parse_args(["--models", "130m", "--batches", "4", "--lengths", "512", "1024", "--repeats", "5",
                             "--decode-tokens", "16", "--rows", "transformers", "--json", "x.json"])
    assert (args.models, args.batches, args.lengths, args.repeats) == (["130m"], [4], [512, 1024], 5)
    assert (args.decode_tokens, args.rows, args.json) == (16, ["transformers"], "x.json")


@pytest.mark.parametrize("argv, message", [
    (["--models", "7b"], "invalid choice"),
    (["--batches", "0"], "--batches must be positive"),
    (["--lengths", "-3"], "--lengths must be positive"),
    (["--decode-tokens", "1"], "--decode-tokens must be at least 2"),
    (["--repeats", "0"], "--repeats must be positive"),
])
def test_bad_options_are_named(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_help_runs_without_the_baselines():
    result = run_script("--help")
    assert result.returncode == 0, result.stderr
    assert "--decode-tokens" in result.stdout and "mamba-ssm" in result.stdout


def test_table_has_a_line_per_model_and_row(bench):
    decode = {"1": {"tokens_per_s": 812.4, "first_call_extra_s": 1.234},
              "32": {"tokens_per_s": None, "first_call_extra_s": 0.5}}
    results = {"130m": {"mamba_ssm cg=True": {"decode": decode, "prefill_s": {"2048": {"median_s": 0.0123}}},
                        "transformers": {"decode": {"1": {"tokens_per_s": 95.0, "first_call_extra_s": 3.0}},
                                         "prefill_s": {}}}}
    lines = bench.format_table(results, [1, 32], [2048]).splitlines()
    assert lines[0] == ("| model | row | decode tok/s b1 | decode tok/s b32 | first call extra s b1 "
                        "| first call extra s b32 | prefill ms L2048 |")
    assert lines[1] == "|" + "---|" * 7
    assert lines[2] == "| 130m | mamba_ssm cg=True | 812 | - | 1.23 | 0.50 | 12.3 |"
    assert lines[3] == "| 130m | transformers | 95 | - | 3.00 | - | - |"
    assert len(lines) == 4


def write_package(root: Path, name: str, body: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text(body)


@pytest.mark.parametrize("missing, what", [
    ("causal_conv1d_cuda", "causal-conv1d's compiled CUDA extension"),
    ("selective_scan_cuda", "mamba-ssm's compiled CUDA extension"),
])
def test_a_missing_baseline_is_named(tmp_path, missing, what):
    # Stand-ins that import, except the one that fails as an extension built for another torch does.
    modules = ("causal_conv1d", "causal_conv1d_cuda", "selective_scan_cuda", "mamba_ssm")
    for name in modules:
        body = ("raise ImportError('undefined symbol: _ZN3c104cuda9SetDeviceEa')" if name == missing
                else "__version__ = '0'\n")
        write_package(tmp_path, name, body)
    (tmp_path / "mamba_ssm" / "models").mkdir()
    (tmp_path / "mamba_ssm" / "models" / "__init__.py").write_text("")
    (tmp_path / "mamba_ssm" / "models" / "mixer_seq_simple.py").write_text("")
    result = run_script("--models", "130m", pythonpath=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot import {missing} ({what})" in result.stderr
    assert "undefined symbol" in result.stderr and "stage_baselines.sh" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_any_baseline_the_package_is_named(tmp_path):
    if importlib.util.find_spec("causal_conv1d") is not None:
        pytest.skip("causal_conv1d is installed in this environment")
    result = run_script("--models", "130m")
    assert result.returncode == 2
    assert "cannot import causal_conv1d (the causal-conv1d package): ModuleNotFoundError" in result.stderr


def test_transformers_row_measures_on_the_cpu(bench, monkeypatch):
    # The timing loop and generate() calls of the transformers row, on a tiny float32 model on the CPU; without
    # mamba-ssm's kernels its profiled forward finds none of them (the fallback the GPU run warns about).
    # A row that fails (here mamba-ssm's, made to) is recorded with its error and the next row still runs.
    monkeypatch.setattr(bench, "DEVICE", "cpu")
    monkeypatch.setattr(bench, "DTYPE", "float32")
    monkeypatch.setattr(bench, "VOCAB_SIZE", 64)
    monkeypatch.setattr(bench, "MODELS", {"tiny": {"d_model": 16, "n_layer": 2}})

    def no_mamba_ssm(config, seed):
        raise RuntimeError("no kernel image is available for execution on the device")

    monkeypatch.setattr(bench, "build_mamba_ssm", no_mamba_ssm)
    build_transformers = bench.build_transformers

    def half_the_tokens_end(config, seed):  # so only the row's forced token count keeps generate() going
        model = build_transformers(config, seed)
        model.generation_config.eos_token_id = list(range(32))  # half the vocabulary
        return model

    monkeypatch.setattr(bench, "build_transformers", half_the_tokens_end)
    args = bench.parse_args(["--models", "tiny", "--rows", "transformers", "mamba_ssm cg=True", "--batches", "1",
                             "2", "--lengths", "8", "--decode-tokens", "4", "--prompt-tokens", "3", "--repeats", "2"])
    snapshots = []
    results = bench.measure(args, after_row=lambda partial: snapshots.append(bench.failed_rows(partial)))
    assert snapshots == [["tiny mamba_ssm cg=True"], ["tiny mamba_ssm cg=True"]]
    assert list(results["tiny"]) == ["mamba_ssm cg=True", "transformers"]
    assert results["tiny"]["mamba_ssm cg=True"] == {
        "error": "RuntimeError: no kernel image is available for execution on the device"}
    entry = results["tiny"]["transformers"]
    if importlib.util.find_spec("mamba_ssm") is None:
        assert entry["fused_kernels"] == []
    for batch in ("1", "2"):
        decode = entry["decode"][batch]
        assert decode["later_call_s"] > 0 and decode["prompt_plus_one_s"] > 0 and decode["first_call_s"] > 0
        step = (decode["later_call_s"] - decode["prompt_plus_one_s"]) / 3
        assert decode["step_ms"] == pytest.approx(1e3 * step)
    assert entry["prefill_s"]["8"]["median_s"] > 0
    table = bench.format_table(results, args.batches, args.lengths).splitlines()
    assert table[2] == "| tiny | mamba_ssm cg=True | error | error | error | error | error |"
    assert table[3].startswith("| tiny | transformers | ") and "error" not in table[3]


def test_a_generate_that_stops_early_is_an_error(bench, monkeypatch):
    import torch

    class StopsEarly:
        def generate(self, ids, **kwargs):
            return ids  # no new token

    monkeypatch.setattr(bench, "DEVICE", "cpu")
    run = bench.generator("transformers", StopsEarly())
    with pytest.raises(RuntimeError, match=r"generate\(\) returned shape \(1, 3\), expected \(1, 5\)"):
        run(torch.zeros(1, 3, dtype=torch.long), 2)
