"""The op library's process-wide kernel switches (mamba_export_ops_set_scan_loads,
mamba_export_ops_set_decode_scan; selective_scan/cuda_loads.h; mamba_export_ops_set_wide_index;
common/index_width.h), as pytest fixtures: each
test switches the very library ONNX Runtime loaded, and the process's mode comes back after."""

from __future__ import annotations

import ctypes

import pytest

MODES = (0, 1)


def switch_fixture(symbol: str, start: int):
    """A fixture giving switch(mode) for ``symbol``, set to ``start`` first and restored after."""

    @pytest.fixture
    def fixture(cuda_library):
        setter = getattr(ctypes.CDLL(cuda_library), symbol)
        before = setter(start)
        assert before in MODES

        def switch(mode: int) -> None:
            assert setter(mode) in MODES

        yield switch
        setter(before)

    return fixture


def check_unknown_mode_is_refused(cuda_library: str, symbol: str) -> None:
    setter = getattr(ctypes.CDLL(cuda_library), symbol)
    assert setter(2) == -1
    before = setter(0)
    assert before in MODES  # an unknown mode changed nothing
    setter(before)
