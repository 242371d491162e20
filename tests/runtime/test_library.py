"""Finding and building the custom-op library (mamba_export/runtime/library.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mamba_export.errors import BuildError, CustomOpsNotFoundError
from mamba_export.runtime import library


@pytest.fixture
def nowhere(monkeypatch, tmp_path):
    """No library anywhere: the default locations point into an empty folder."""
    monkeypatch.delenv(library.ENV_VAR, raising=False)
    monkeypatch.setattr(library, "default_build_dir", lambda: tmp_path / "build")
    monkeypatch.setattr(library, "packaged_library", lambda: tmp_path / "_lib" / library.LIBRARY_NAME)
    return tmp_path


def test_import_has_no_side_effects():
    code = ("import sys, mamba_export.runtime.library; "
            "print('onnxruntime' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_missing_library_names_the_places_and_the_command(nowhere):
    with pytest.raises(CustomOpsNotFoundError) as caught:
        library.get_library_path()
    message = str(caught.value)
    assert str(nowhere / "build" / library.LIBRARY_NAME) in message
    assert str(nowhere / "_lib" / library.LIBRARY_NAME) in message
    assert library.ENV_VAR in message
    assert "mamba-export build-ops" in message


def test_search_order_env_then_build_then_package(nowhere, monkeypatch):
    packaged = nowhere / "_lib" / library.LIBRARY_NAME
    built = nowhere / "build" / library.LIBRARY_NAME
    from_env = nowhere / "elsewhere.so"
    for path in (packaged, built, from_env):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        if path is packaged:
            assert library.get_library_path() == str(packaged)
    assert library.get_library_path() == str(built)
    monkeypatch.setenv(library.ENV_VAR, str(from_env))
    assert library.get_library_path() == str(from_env.resolve())


def test_env_pointing_nowhere_is_an_error_not_a_fallback(nowhere, monkeypatch):
    built = nowhere / "build" / library.LIBRARY_NAME
    built.parent.mkdir(parents=True)
    built.write_bytes(b"")
    monkeypatch.setenv(library.ENV_VAR, str(nowhere / "missing.so"))
    with pytest.raises(CustomOpsNotFoundError, match="missing.so.*not a file"):
        library.get_library_path()


def test_build_command_passes_the_options(tmp_path):
    command = library.build_command(cuda=True, include_dir=str(tmp_path), build_dir=str(tmp_path / "b"))
    assert command[2:] == ["--cuda", "--include-dir", str(tmp_path.resolve()),
                           "--build-dir", str((tmp_path / "b").resolve())]
    assert Path(command[1]).name == "build_custom_ops.sh"


def test_include_dir_without_headers_is_a_build_error(tmp_path):
    with pytest.raises(BuildError, match="has no onnxruntime_c_api.h"):
        library.build_library(include_dir=str(tmp_path))


def test_failed_build_reports_the_log_tail(tmp_path):
    """Headers of an old API version: CMake stops and the error quotes its reason."""
    headers = tmp_path / "headers"
    headers.mkdir()
    (headers / "onnxruntime_c_api.h").write_text("#define ORT_API_VERSION 5\n")
    with pytest.raises(BuildError, match=r"ORT_API_VERSION '5', expected >= 21"):
        library.build_library(include_dir=str(headers), build_dir=str(tmp_path / "build"))


def test_build_ops_command_prints_the_path(monkeypatch, capsys):
    from mamba_export.cli.main import main

    calls = []

    def fake_build(cuda=False, include_dir=None, build_dir=None):
        calls.append((cuda, include_dir, build_dir))
        return "/built/libmamba_export_ops.so"

    monkeypatch.setattr(library, "build_library", fake_build)
    assert main(["build-ops", "--cuda", "--build-dir", "out"]) == 0
    assert calls == [(True, None, "out")]
    assert capsys.readouterr().out.strip() == "/built/libmamba_export_ops.so"
