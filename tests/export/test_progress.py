"""The progress display: step names and durations on its stream, nothing when disabled."""

from __future__ import annotations

import io

import pytest

from mamba_export.export.progress import Progress


def test_steps_report_start_and_outcome():
    stream = io.StringIO()
    progress = Progress(True, stream)
    with progress.step("Tracing"):
        pass
    with pytest.raises(ValueError), progress.step("Saving"):
        raise ValueError("no space")
    progress.note("done")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "Tracing ..." and lines[1].startswith("Tracing: done in ")
    assert lines[3].startswith("Saving: failed in ") and lines[-1] == "done"


def test_disabled_prints_nothing():
    stream = io.StringIO()
    progress = Progress(False, stream)
    with progress.step("Tracing"):
        progress.note("x")
    assert stream.getvalue() == ""
