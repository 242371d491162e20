"""``optimum-cli export mamba`` reaches our exporter through optimum's plugin namespace."""

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("optimum-cli") is None, reason="optimum is not installed")


def test_optimum_cli_lists_the_mamba_export_subcommand():
    result = subprocess.run(["optimum-cli", "export", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "mamba" in result.stdout


def test_optimum_cli_mamba_help_shows_our_options():
    result = subprocess.run(["optimum-cli", "export", "mamba", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for flag in ("--model", "--backend", "--dtype", "--no-check", "--force"):
        assert flag in result.stdout


def test_optimum_cli_reports_errors_like_our_cli(tmp_path):
    result = subprocess.run(
        ["optimum-cli", "export", "mamba", "--model", str(tmp_path / "missing"), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert "missing" in result.stderr
