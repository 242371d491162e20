"""The op library's process-wide kernel switches (mamba_export_ops_set_scan_loads,
mamba_export_ops_set_decode_scan; selective_scan/cuda_loads.h; mamba_export_ops_set_wide_index;
common/index_width.h), as pytest fixtures: each
test switches the very library ONNX Runtime loaded, and the process's mode comes back after."""

from __future__ import annotations

import ctypes

import numpy as np
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


# Where scan_cuda.check_parity and run_projected return y and last_state.
SCAN_OUTPUTS = {"y": 2, "last_state": 3}


def check_modes_agree(switch, modes, run, outputs: dict) -> None:
    """Runs ``run()`` once in each of ``modes`` (``switch(mode)`` first) and checks that the outputs
    ``{name: index into run()'s result}`` have the same bits in every mode."""
    results = []
    for mode in modes:
        switch(mode)
        results.append(run())
    for name, index in outputs.items():
        for mode, result in zip(modes[1:], results[1:], strict=True):
            np.testing.assert_array_equal(result[index], results[0][index], err_msg=f"{name} in mode {mode}")

