"""examples/node (generate.js on onnxruntime-node) against the Python runtime.

onnxruntime-node offers no way to register a custom-op library (docs/deploy.md), so
only standard-ops graphs run there; a custom-op graph must fail with one clear line."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.examples.runners import assert_user_error, generate_args, parse_ids, python_greedy, run_program


@pytest.mark.parametrize("logits, dtype", [("all", "fp32"), ("last", "fp32"), ("all", "fp16")])
def test_standard_backend_matches_python_runtime(node_runner, exported, logits, dtype):
    folder = exported("standard", logits, dtype)
    result = run_program([*node_runner, *generate_args(folder)])
    assert result.returncode == 0, result.stderr
    assert parse_ids(result.stdout) == python_greedy(folder)


def test_custom_backend_is_refused_clearly(node_runner, exported):
    result = run_program([*node_runner, *generate_args(exported("custom"))])
    assert_user_error(result, "custom op", "--backend standard")


def test_bf16_export_is_refused_clearly(node_runner, exported):
    result = run_program([*node_runner, *generate_args(exported("standard", dtype="bf16"))])
    assert_user_error(result, "bf16 export", "no bfloat16 tensors", "--dtype fp16")


def test_token_id_outside_vocabulary(node_runner, exported):
    folder = exported("standard")
    vocab = json.loads((folder / "export_info.json").read_text())["vocab_size"]
    result = run_program([*node_runner, "--model", folder, "--ids", f"1,{vocab}"])
    assert_user_error(result, f"token id {vocab} is outside the vocabulary (0..{vocab - 1})")


def test_missing_folder(node_runner, tmp_path):
    missing = tmp_path / "no-such-export"
    assert_user_error(run_program([*node_runner, *generate_args(missing)]), str(missing), "does not exist")


def test_missing_model_onnx(node_runner, exported, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(exported("standard"), partial)
    (partial / "model.onnx").unlink()
    assert_user_error(run_program([*node_runner, *generate_args(partial)]), "model.onnx not found")


def test_custom_ops_flag_is_refused(node_runner, exported, tmp_path):
    library = tmp_path / "libmamba_export_ops.so"
    result = run_program([*node_runner, *generate_args(exported("standard"), "--custom-ops", library)])
    assert_user_error(result, "no way to register a custom-op library")
