"""The projected delta on the CPU kernel: delta_weight (D, R) times x_dt read from delta at
delta_offset, against the float64 reference (projected_cases.py), against the plain kernel fed
the projected delta, and the errors for malformed calls (the contract's messages)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from projected_cases import check_projected, make_projected, projected_model
from scan_cases import Y_TOLERANCE, relative_error, run
from shape_edits import assert_rejected_as_the_contract_says
from support.one_node import selective_scan_model

from mamba_export.errors import InputShapeError
from mamba_export.ops.selective_scan import check_inputs, project_delta

DTYPES = tuple(Y_TOLERANCE)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.integers(1, 3), dim=st.integers(1, 40), length=st.one_of(st.integers(0, 4), st.integers(5, 80)),
       state=st.integers(1, 20), rank=st.integers(1, 12), io_dtype=st.sampled_from(DTYPES),
       present=st.sets(st.sampled_from(("D", "z", "delta_bias", "initial_state"))),
       seed=st.integers(0, 2**31 - 1), layer=st.booleans())
def test_fuzzed_projected_delta_matches_the_reference(make_session, batch, dim, length, state, rank, io_dtype,
                                                      present, seed, layer):
    """Lengths on both sides of the row path's limit (2 or 4), so both CPU paths read the projection."""
    check_projected(make_session, io_dtype, layer=layer, batch=batch, dim=dim, length=length, state=state,
                    rank=rank, seed=seed, present=tuple(sorted(present)))


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("length", [1, 300], ids=["decode", "prefill"])
@pytest.mark.parametrize("threads", [1, 2])
def test_projected_delta_on_a_layer_of_mamba_130m_shapes(make_session, io_dtype, length, threads):
    """x_proj's output [dt, B, C] (R = 48, N = 16) feeding delta, B and C of 96 channels."""
    check_projected(lambda model: make_session(model, threads), io_dtype, layer=True,
                    batch=3 if length == 1 else 1, dim=96, length=length, state=16, rank=48, seed=5)


@pytest.mark.parametrize("length", [1, 3, 70])
def test_projected_equals_the_plain_kernel_fed_the_projected_delta(make_session, length):
    """float32 I/O: the plain kernel on delta = x_dt @ delta_weight.T (numpy, float32) gives y and
    last_state within float32 rounding of the projected run (only the order of the R products
    differs)."""
    inputs, offsets, y, last_state = check_projected(make_session, "float32", batch=2, dim=24, length=length,
                                                     state=8, rank=6, seed=length)
    dims = check_inputs({k: v.shape for k, v in inputs.items()}, layout=1, offsets=offsets)
    plain = {k: v for k, v in inputs.items() if k != "delta_weight"}
    plain["delta"] = project_delta(inputs, offsets, dims).astype(np.float32)
    model = selective_scan_model("float32", present=("D", "z", "delta_bias", "initial_state"), delta_softplus=1,
                                 layout=1)
    plain_y, plain_state = run(make_session(model), plain)
    assert relative_error(y, plain_y) <= 1e-6
    assert relative_error(last_state, plain_state) <= 1e-6


def _contract_message(feeds: dict, offsets: dict, layout: int = 1) -> str:
    with pytest.raises(InputShapeError) as caught:
        check_inputs({k: v.shape for k, v in feeds.items()}, layout=layout, offsets=offsets)
    return str(caught.value)


BAD_CALLS = {
    "offset -1 with a weight": lambda i, o: (i, o | {"delta_offset": -1}),
    "offset below -1": lambda i, o: (i, o | {"delta_offset": -3}),
    "W too small": lambda i, o: (i | {"delta": i["delta"][:, :, :o["delta_offset"] + 2]}, o),
    "weight of the wrong D": lambda i, o: (i | {"delta_weight": np.zeros((7, 3), np.float32)}, o),
    "weight of rank 1": lambda i, o: (i | {"delta_weight": np.zeros((8,), np.float32)}, o),
    "offset without a weight": lambda i, o: ({k: v for k, v in i.items() if k != "delta_weight"}, o),
    "delta of another length": lambda i, o: (i | {"delta": i["delta"][:, :-1]}, o),
}


@pytest.mark.parametrize("label", sorted(BAD_CALLS))
def test_malformed_projected_calls_get_the_contracts_message(make_session, label):
    inputs, offsets = make_projected(batch=2, dim=8, length=5, state=4, rank=3, seed=1)
    feeds, attributes = BAD_CALLS[label](inputs, offsets)
    expected = _contract_message(feeds, attributes)
    assert "delta" in expected
    session = make_session(projected_model("float32", feeds, attributes))
    assert_rejected_as_the_contract_says(session, feeds, expected, label)


def test_projected_delta_in_layout_0_is_rejected(make_session):
    """The projected form is channels last only; a layout-0 node with delta_weight says so."""
    inputs, offsets = make_projected(batch=2, dim=8, length=5, state=4, rank=3, seed=2)
    model = projected_model("float32", inputs, offsets)
    for attribute in model.graph.node[0].attribute:
        if attribute.name == "layout":
            attribute.i = 0
    expected = "SelectiveScan: input delta_weight needs layout 1 (channels last), the layout is 0"
    assert _contract_message(inputs, offsets, layout=0) == expected
    assert_rejected_as_the_contract_says(make_session(model), inputs, expected, "layout 0")
