"""The two CPU scan paths: rows for short sequences (decode), blocks of 16 channels
for longer ones. Where one ends depends on the CPU (L <= 4 with AVX-512, L <= 2 with
AVX2, rows never on baseline x86-64; RowPathMaxLength in cpu.cc), so the lengths
below straddle every one of those limits. Each path is checked against the float64
reference on the shapes that reach its corners, and prompts cut into calls that
cross from one path to the other must continue the same scan.

Tolerances are those of test_selective_scan_cpu.py, for the same reasons: 1e-5 for
float32 outputs and every last_state (float32 arithmetic only), 5e-3 for float16 y
and 2^-7 for bfloat16 y (dominated by rounding y to the I/O dtype).
"""

from __future__ import annotations

import numpy as np
import pytest
from scan_cases import (
    ALL_OPTIONAL,
    STATE_TOLERANCE,
    Y_TOLERANCE,
    check_parity,
    make_inputs,
    reference,
    relative_error,
    run,
)
from support.one_node import selective_scan_model

LENGTHS = [1, 2, 3, 4, 5, 8]  # both sides of each CPU's row-path limit

CORNERS = {
    # channels per group run (100) not a multiple of the 64-row chunk
    "groups_b_uneven_chunks": dict(batch=2, dim=200, groups_b=2),
    "groups_both": dict(batch=1, dim=96, groups_b=3, groups_c=8),
    "batch_3_dim_130": dict(batch=3, dim=130),
    "state_5": dict(state=5),      # below one vector of products
    "state_20": dict(state=20),    # one 16-wide fold plus a tail
    "state_33": dict(state=33),
    "state_300": dict(state=300, dim=4),  # above the row path's state limit: blocks only
    "no_optional": dict(present=()),
    "only_initial_state": dict(present=("initial_state",)),
    "no_z": dict(present=("D", "delta_bias", "initial_state")),
}


@pytest.mark.parametrize("layout", [0, 1], ids=["channels_first", "channels_last"])
@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("corner", sorted(CORNERS))
def test_both_paths_match_reference(make_session, corner, length, layout):
    check_parity(make_session, "float32", True, length=length, layout=layout, **CORNERS[corner])


@pytest.mark.parametrize("io_dtype", sorted(Y_TOLERANCE))
@pytest.mark.parametrize("delta_softplus", [False, True], ids=["linear", "softplus"])
@pytest.mark.parametrize("length", [1, 3])
def test_row_path_dtypes(make_session, io_dtype, delta_softplus, length):
    check_parity(make_session, io_dtype, delta_softplus, length=length, batch=2, dim=80,
          state=16)


def test_row_path_threads_do_not_change_results(make_session):
    """Enough rows for several tasks: two threads must give one thread's bits."""
    case = dict(batch=8, dim=512, state=16, length=2)
    single = check_parity(make_session, "float32", True, threads=1, **case)
    parallel = check_parity(make_session, "float32", True, threads=2, **case)
    for a, b in zip(single, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_calls_across_paths_continue_one_scan(make_session):
    """A 12-step prompt as calls of 1, 3, 7 and 1 steps (rows, rows, blocks, rows),
    each starting from the last call's state, gives the one-call scan."""
    inputs = make_inputs(batch=2, dim=70, length=12, state=16, delta_softplus=True)
    model = selective_scan_model(present=ALL_OPTIONAL, delta_softplus=1)
    session = make_session(model)
    ref_y, ref_state = reference(inputs, True)
    state = inputs["initial_state"]
    pieces = []
    start = 0
    for steps in (1, 3, 7, 1):
        part = {k: (v[..., start:start + steps] if k in ("u", "delta", "B", "C", "z") else v)
                for k, v in inputs.items()}
        part["initial_state"] = state
        y, last_state = run(session, part)
        pieces.append(y)
        state = last_state.astype(np.float32)
        start += steps
    assert relative_error(np.concatenate(pieces, axis=-1), ref_y) <= Y_TOLERANCE["float32"]
    assert relative_error(state, ref_state) <= STATE_TOLERANCE
