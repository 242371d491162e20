"""`mamba-export serve`'s own checks, before Ray starts: each bad argument is one line naming it."""

from __future__ import annotations

import subprocess
import sys


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mamba_export", "serve", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_the_help_lists_the_options():
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--replicas", "--max-batch", "--provider", "--host", "--port", "--address"):
        assert option in result.stdout


def test_bad_arguments_are_named(tmp_path, export_tiny):
    for args, words in [((tmp_path / "nothing",), "does not exist"),
                        ((export_tiny("default"), "--replicas", "0"), "--replicas must be at least 1"),
                        ((export_tiny("default"), "--max-batch", "0"), "max_batch must be a positive integer"),
                        ((export_tiny("default", base=True),), "base-model export")]:
        result = run_cli(*args)
        assert result.returncode == 2, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("mamba-export serve: error:") and words in last
