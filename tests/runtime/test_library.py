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
    monkeypatch.setattr(library, "cuda_build_dir", lambda: tmp_path / "build_cuda")
    monkeypatch.setattr(library, "packaged_library", lambda: tmp_path / "_lib" / library.LIBRARY_NAME)
    return tmp_path


def _place(path: Path, source: str | None = None) -> Path:
    """A library at ``path``: a copy of a real build, or an empty file when only its place matters."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(Path(source).read_bytes() if source else b"")
    return path


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


def test_cpu_search_falls_back_to_the_cuda_build(nowhere):
    """A CUDA build holds the CPU kernels too, so it serves the CPU when it is the only build."""
    cuda_build = _place(nowhere / "build_cuda" / library.LIBRARY_NAME)
    assert library.get_library_path() == str(cuda_build)
    cpu_build = _place(nowhere / "build" / library.LIBRARY_NAME)
    assert library.get_library_path() == str(cpu_build)


def test_cuda_search_prefers_the_cuda_build(nowhere, cpu_only_library, cuda_library):
    cpu_build = _place(nowhere / "build" / library.LIBRARY_NAME, cpu_only_library)
    with pytest.raises(CustomOpsNotFoundError, match=r"without CUDA kernels.*build-ops --cuda"):
        library.get_library_path(cuda=True)  # only the CPU build exists: refused, not used
    cuda_build = _place(nowhere / "build_cuda" / library.LIBRARY_NAME, cuda_library)
    assert library.get_library_path(cuda=True) == str(cuda_build)
    assert library.get_library_path() == str(cpu_build)


def test_cuda_search_with_nothing_built_names_the_cuda_command(nowhere):
    with pytest.raises(CustomOpsNotFoundError) as caught:
        library.get_library_path(cuda=True)
    message = str(caught.value)
    assert message.index(str(nowhere / "build_cuda")) < message.index(str(nowhere / "build" / library.LIBRARY_NAME))
    assert "mamba-export build-ops --cuda" in message


def test_env_library_without_cuda_kernels_is_refused_for_cuda(nowhere, monkeypatch, cpu_only_library):
    monkeypatch.setenv(library.ENV_VAR, cpu_only_library)
    assert library.get_library_path() == str(Path(cpu_only_library).resolve())
    with pytest.raises(CustomOpsNotFoundError, match="without CUDA kernels"):
        library.get_library_path(cuda=True)


def test_the_library_says_whether_it_has_cuda_kernels(cpu_only_library, cuda_library):
    assert library.has_cuda_kernels(cpu_only_library) is False
    assert library.has_cuda_kernels(cuda_library) is True


def test_has_cuda_kernels_of_a_file_that_is_not_a_library(tmp_path):
    fake = _place(tmp_path / "libfake.so")
    with pytest.raises(CustomOpsNotFoundError, match="could not load"):
        library.has_cuda_kernels(str(fake))


def test_has_cuda_kernels_of_a_library_without_the_symbol(tmp_path):
    """An older build (or any other shared library) cannot answer: rebuild, never guess."""
    import ctypes.util

    libm = ctypes.util.find_library("m")
    if libm is None:
        pytest.skip("no libm to stand in for an old build")
    with pytest.raises(CustomOpsNotFoundError, match="older build.*build-ops --cuda"):
        library.has_cuda_kernels(libm)


def test_cuda_build_goes_to_its_own_folder(monkeypatch):
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        raise OSError("not really running")

    monkeypatch.setattr(library.subprocess, "run", fake_run)
    with pytest.raises(BuildError):
        library.build_library(cuda=True)
    assert calls[0][-2:] == ["--build-dir", str(library.cuda_build_dir())]


@pytest.mark.parametrize("name", ["mamba_export_ops_set_dependent_launch", "mamba_export_ops_set_decode_scan",
                                  "mamba_export_ops_set_scan_loads", "mamba_export_ops_set_wide_index"])
def test_the_timing_switches(cpu_only_library, cuda_library, name):
    """The process-wide switches of the CUDA build (common/dependent_launch.h,
    selective_scan/cuda_loads.h): 0 and 1 switch and return the previous setting; another
    value, or the CPU-only build, answers -1."""
    import ctypes

    assert getattr(ctypes.CDLL(cpu_only_library), name)(1) == -1
    switch = getattr(ctypes.CDLL(cuda_library), name)
    before = switch(0)
    assert before in (0, 1)
    try:
        assert switch(1) == 0
        assert switch(2) == -1 and switch(-1) == -1
        assert switch(1) == 1  # the refused values changed nothing
    finally:
        switch(before)


@pytest.mark.parametrize(("value", "starts_on"), [(None, 1), ("0", 0), ("off", 0), ("1", 1), ("on", 1)])
def test_dependent_launch_starts_as_the_environment_says(cuda_library, value, starts_on):
    import os

    env = {k: v for k, v in os.environ.items() if k != "MAMBA_EXPORT_DEPENDENT_LAUNCH"}
    if value is not None:
        env["MAMBA_EXPORT_DEPENDENT_LAUNCH"] = value
    code = f"import ctypes; print(ctypes.CDLL({cuda_library!r}).mamba_export_ops_set_dependent_launch(1))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(starts_on)
