"""examples/cpp (mamba_generate) against the Python runtime: same greedy tokens for both
backends, and one clear line with exit status 2 for each mistake a caller can make."""

from __future__ import annotations

import json
import shutil

import onnxruntime as ort
import pytest

from tests.examples.runners import (
    assert_user_error,
    generate_args,
    parse_ids,
    python_greedy,
    python_greedy_without_states,
    run_program,
)


def test_the_comparison_would_catch_dropped_states(exported):
    """Guards the fixture: a runner that did not carry the states would not match."""
    folder = exported("standard")
    reference = python_greedy(folder)
    assert len(set(reference)) >= 4, reference
    assert python_greedy_without_states(folder) != reference


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_custom_backend_matches_python_runtime(cpp_runner, exported, ops_library, dtype):
    folder = exported("custom", dtype=dtype)
    result = run_program([cpp_runner, *generate_args(folder, "--custom-ops", ops_library)])
    assert result.returncode == 0, result.stderr
    assert parse_ids(result.stdout) == python_greedy(folder)


@pytest.mark.parametrize("logits, dtype", [("all", "fp32"), ("last", "fp32"), ("all", "fp16")])
def test_standard_backend_matches_python_runtime(cpp_runner, exported, logits, dtype):
    folder = exported("standard", logits, dtype)
    result = run_program([cpp_runner, *generate_args(folder)])
    assert result.returncode == 0, result.stderr
    assert parse_ids(result.stdout) == python_greedy(folder)


def test_bf16_export_matches_or_is_refused_clearly(cpp_runner, exported):
    """Where the Python runtime runs a bf16 export on the CPU the tokens must match; where
    ONNX Runtime's CPU provider lacks bf16 kernels, the runner must say so in one line."""
    from mamba_export.errors import BackendUnavailableError

    folder = exported("standard", dtype="bf16")
    result = run_program([cpp_runner, *generate_args(folder)])
    try:
        expected = python_greedy(folder)
    except BackendUnavailableError:
        assert_user_error(result, "cannot run this bf16 export", "--provider cuda", "--dtype fp16")
        return
    assert result.returncode == 0, result.stderr
    assert parse_ids(result.stdout) == expected


def test_library_found_through_variable_and_beside_model(cpp_runner, exported, ops_library, tmp_path):
    folder = exported("custom")
    expected = python_greedy(folder)
    by_variable = run_program([cpp_runner, *generate_args(folder)], {"MAMBA_EXPORT_OPS_LIBRARY": ops_library})
    assert by_variable.returncode == 0, by_variable.stderr
    assert parse_ids(by_variable.stdout) == expected

    deployed = tmp_path / "deployed"
    shutil.copytree(folder, deployed)
    shutil.copy(ops_library, deployed / "libmamba_export_ops.so")
    beside = run_program([cpp_runner, *generate_args(deployed)])
    assert beside.returncode == 0, beside.stderr
    assert parse_ids(beside.stdout) == expected


def test_eos_stops_generation(cpp_runner, exported):
    folder = exported("standard")
    tokens = python_greedy(folder)
    result = run_program([cpp_runner, *generate_args(folder, "--eos-id", tokens[2])])
    assert result.returncode == 0, result.stderr
    assert parse_ids(result.stdout) == tokens[: tokens.index(tokens[2]) + 1]



def test_token_id_outside_vocabulary(cpp_runner, exported):
    folder = exported("standard")
    vocab = json.loads((folder / "export_info.json").read_text())["vocab_size"]
    result = run_program([cpp_runner, "--model", folder, "--ids", f"1,{vocab}"])
    assert_user_error(result, f"token id {vocab} is outside the vocabulary (0..{vocab - 1})")


def test_missing_folder(cpp_runner, tmp_path):
    missing = tmp_path / "no-such-export"
    assert_user_error(run_program([cpp_runner, *generate_args(missing)]), str(missing), "does not exist")


def test_missing_model_onnx(cpp_runner, exported, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(exported("standard"), partial)
    (partial / "model.onnx").unlink()
    assert_user_error(run_program([cpp_runner, *generate_args(partial)]), "model.onnx not found")


def test_missing_export_info(cpp_runner, exported, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(exported("standard"), partial)
    (partial / "export_info.json").unlink()
    assert_user_error(run_program([cpp_runner, *generate_args(partial)]), "export_info.json not found")


def test_missing_library_given_by_flag(cpp_runner, exported, tmp_path):
    missing = tmp_path / "libmissing.so"
    result = run_program([cpp_runner, *generate_args(exported("custom"), "--custom-ops", missing)])
    assert_user_error(result, str(missing), "does not exist", "mamba-export build-ops")


def test_missing_library_given_by_variable(cpp_runner, exported, tmp_path):
    missing = tmp_path / "libmissing.so"
    result = run_program([cpp_runner, *generate_args(exported("custom"))],
                         {"MAMBA_EXPORT_OPS_LIBRARY": missing})
    assert_user_error(result, "MAMBA_EXPORT_OPS_LIBRARY", str(missing), "does not exist")


def test_custom_graph_without_any_library(cpp_runner, exported):
    result = run_program([cpp_runner, *generate_args(exported("custom"))])
    assert_user_error(result, "needs the SelectiveScan custom-op library", "--custom-ops",
                      "--backend standard")


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(),
                    reason="this onnxruntime has CUDA; the error path is for CPU-only builds")
def test_cuda_requested_from_cpu_build(cpp_runner, exported):
    result = run_program([cpp_runner, *generate_args(exported("standard"), "--provider", "cuda")])
    assert_user_error(result, "no CUDAExecutionProvider", "onnxruntime-gpu")


@pytest.mark.parametrize("args, fragment", [
    (["--ids", "1,2"], "--model DIR is required"),
    (["--model", "x"], "--ids is required"),
    (["--model", "x", "--ids", "1,a"], "--ids expects an integer, got 'a'"),
    (["--model", "x", "--ids", "1", "--provider", "tpu"], "--provider expects cpu or cuda, got 'tpu'"),
    (["--model", "x", "--ids", "1", "--bogus", "1"], "unknown flag '--bogus'"),
])
def test_bad_flags(cpp_runner, args, fragment):
    assert_user_error(run_program([cpp_runner, *args]), fragment)


@pytest.fixture(scope="module")
def other_kinds(tmp_path_factory):
    """A FalconMamba causal LM and a MambaModel, each saved and exported by path (standard backend)."""
    from mamba_export.export.convert import export
    from mamba_export.options import ExportOptions
    from tests.support.checkpoint_kinds import save_base_model, save_falcon_causal_lm

    root = tmp_path_factory.mktemp("kinds")
    options = ExportOptions(backend="standard", validate=False, show_progress=False)
    falcon = export(str(save_falcon_causal_lm(root / "falcon")), root / "falcon-export", options)
    base = export(str(save_base_model(root / "base")), root / "base-export", options)
    return {"falcon": falcon, "base": base}


def test_falcon_export_matches_python_runtime(cpp_runner, other_kinds):
    folder = other_kinds["falcon"]
    result = run_program([cpp_runner, *generate_args(folder)])
    assert result.returncode == 0, result.stderr
    assert parse_ids(result.stdout) == python_greedy(folder)


def test_base_model_features_match_python_runtime(cpp_runner, other_kinds):
    import numpy as np

    from mamba_export.runtime.model import ORTMambaModel
    from tests.examples.runners import PROMPT

    folder = other_kinds["base"]
    result = run_program([cpp_runner, "--model", folder, "--ids", ",".join(map(str, PROMPT)), "--features"])
    assert result.returncode == 0, result.stderr
    printed = np.array([float(v) for v in result.stdout.split()])
    expected = ORTMambaModel.from_pretrained(folder)(np.array([PROMPT])).last_hidden_state[0, -1]
    assert printed.shape == expected.shape
    np.testing.assert_allclose(printed, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def test_base_model_cannot_generate(cpp_runner, other_kinds):
    result = run_program([cpp_runner, *generate_args(other_kinds["base"])])
    assert_user_error(result, "base model", "last_hidden_state", "--features")


def test_features_of_a_causal_lm_are_refused(cpp_runner, other_kinds):
    result = run_program([cpp_runner, "--model", other_kinds["falcon"], "--ids", "1,2", "--features"])
    assert_user_error(result, "--features needs a base-model export", "logits")


def test_format_1_folder_still_runs(cpp_runner, other_kinds, tmp_path):
    """A folder written before head_output existed (model_class only) generates the same tokens."""
    old = tmp_path / "old"
    shutil.copytree(other_kinds["falcon"], old)
    info = json.loads((old / "export_info.json").read_text())
    del info["head_output"]
    info.update(format_version=1, model_class="FalconMambaForCausalLM")
    (old / "export_info.json").write_text(json.dumps(info))
    result = run_program([cpp_runner, *generate_args(old)])
    assert result.returncode == 0, result.stderr
    assert parse_ids(result.stdout) == python_greedy(other_kinds["falcon"])
