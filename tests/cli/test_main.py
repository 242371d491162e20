"""The command line through its real entry point: help, errors, exit codes."""

import subprocess
import sys

import pytest

from mamba_export.cli.main import COMMANDS


def run_cli(*args, input_text=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "mamba_export", *args],
        capture_output=True, text=True, input=input_text, timeout=timeout,
    )


def test_top_level_help_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_has_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: mamba-export " + command in result.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_states_each_default_once_and_never_none(command):
    result = run_cli(command, "--help")
    text = " ".join(result.stdout.split())  # argparse wraps lines anywhere
    assert "(default: None)" not in text
    for option in text.split(" -")[1:]:
        assert option.count("(default:") <= 1, option


def test_console_script_is_installed():
    result = subprocess.run(["mamba-export", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("mamba-export ")


def test_importing_the_package_loads_neither_triton_nor_onnxruntime():
    code = (
        "import sys, mamba_export, mamba_export.cli.main\n"
        "mamba_export.cli.main.build_parser()\n"
        "heavy = [m for m in ('triton', 'onnxruntime', 'torch', 'transformers') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_missing_folder_is_one_line_and_exit_2(tmp_path):
    missing = tmp_path / "nowhere"
    result = run_cli("info", str(missing))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "does not exist" in lines[0] and str(missing) in lines[0]


def test_folder_without_export_info_is_rejected(tmp_path):
    result = run_cli("info", str(tmp_path))
    assert result.returncode == 2
    assert "export_info.json" in result.stderr


def test_bad_choice_is_an_argparse_error():
    result = run_cli("export", "--model", "x", "out", "--dtype", "fp8")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
