"""MambaStates: zeros, graph names, row selection and the checks on what callers pass."""

from __future__ import annotations

import numpy as np
import pytest

from mamba_export.errors import InputShapeError
from mamba_export.runtime.dtypes import BFLOAT16
from mamba_export.runtime.states import MambaStates, StateSpec, check_states

SPEC = StateSpec(num_layers=3, intermediate_size=6, conv_kernel=4, state_size=5,
                 conv_dtype=np.dtype(np.float16), ssm_dtype=np.dtype(np.float32))


def test_zeros_have_the_spec_shapes_and_dtypes():
    states = MambaStates.zeros(SPEC, 2)
    assert len(states) == 3 and states.batch_size == 2
    for conv, ssm in states:
        assert conv.shape == (2, 6, 3) and conv.dtype == np.float16 and not conv.any()
        assert ssm.shape == (2, 6, 5) and ssm.dtype == np.float32 and not ssm.any()


def test_pasts_and_presents_round_trip():
    rng = np.random.default_rng(0)
    states = MambaStates(tuple(rng.normal(size=(2, 6, 3)) for _ in range(3)),
                         tuple(rng.normal(size=(2, 6, 5)) for _ in range(3)))
    pasts = states.as_pasts()
    assert list(pasts) == ["past.0.conv_state", "past.0.ssm_state", "past.1.conv_state",
                           "past.1.ssm_state", "past.2.conv_state", "past.2.ssm_state"]
    presents = {name.replace("past.", "present."): value for name, value in pasts.items()}
    again = MambaStates.from_presents(presents, 3)
    for (c1, s1), (c2, s2) in zip(states, again, strict=True):
        assert c1 is c2 and s1 is s2


def test_select_rows():
    states = MambaStates.zeros(SPEC, 4)
    states.conv[1][2] = 7
    picked = states.select([2])
    assert picked.batch_size == 1 and (picked.conv[1] == 7).all() and not picked.conv[0].any()


def test_concatenate_is_the_inverse_of_select():
    rng = np.random.default_rng(1)
    states = MambaStates(tuple(rng.normal(size=(5, 6, 3)) for _ in range(3)),
                         tuple(rng.normal(size=(5, 6, 5)) for _ in range(3)))
    again = MambaStates.concatenate([states.select(slice(0, 2)), states.select([2]), states.select(slice(3, 5))])
    assert again.batch_size == 5
    for (c1, s1), (c2, s2) in zip(states, again, strict=True):
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(s1, s2)
    single = states.select([4])
    assert MambaStates.concatenate([single]) is single


def test_check_converts_precision_and_keeps_values():
    given = [(np.ones((2, 6, 3), np.float64), np.ones((2, 6, 5), np.float64)) for _ in range(3)]
    checked = check_states(given, SPEC, 2)
    assert checked.conv[0].dtype == np.float16 and checked.ssm[2].dtype == np.float32
    assert (checked.ssm[2] == 1).all()


def test_check_accepts_bfloat16_arrays():
    spec = StateSpec(1, 2, 2, 2, BFLOAT16, np.dtype(np.float32))
    checked = check_states([(np.ones((1, 2, 1), BFLOAT16), np.ones((1, 2, 2), np.float32))], spec, 1)
    assert checked.conv[0].dtype == BFLOAT16


@pytest.mark.parametrize("states, match", [
    ([(np.zeros((2, 6, 3)), np.zeros((2, 6, 5)))], "states has 1 layers, the model has 3"),
    ([(np.zeros((2, 6, 3)),)] * 3, "one .conv_state, ssm_state. pair per layer"),
    ([(np.zeros((2, 6, 4)), np.zeros((2, 6, 5)))] * 3,
     r"past.0.conv_state is \(2, 6, 4\), expected \(2, 6, 3\)"),
    ([(np.zeros((2, 6, 3)), np.zeros((1, 6, 5)))] * 3, r"past.0.ssm_state is \(1, 6, 5\)"),
    ([(np.zeros((2, 6, 3), bool), np.zeros((2, 6, 5)))] * 3, "past.0.conv_state has dtype bool"),
    (3, "sequence of"),
])
def test_check_rejects(states, match):
    with pytest.raises(InputShapeError, match=match):
        check_states(states, SPEC, 2)
