"""The numpy SelectiveScan node of onnx.reference against the float64 reference scan.

Tolerances (relative error max|out - ref| / max|ref|, tests/custom_ops/scan_cases.py):
y and last_state in float32 1e-5 (float32 arithmetic over at most 64 steps here);
float16 y 5e-3, as for the ORT kernel (its rounding alone costs up to 4.9e-4).
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

from mamba_export.errors import InputShapeError
from mamba_export.ops.numpy_op import SelectiveScan, selective_scan
from tests.custom_ops.scan_cases import ALL_OPTIONAL, make_inputs, reference, relative_error
from tests.support.one_node import selective_scan_model

CASES = {
    "plain": dict(),
    "groups": dict(dim=8, groups_b=2, groups_c=4),
    "no_optional": dict(present=()),
    "only_z": dict(present=("z",)),
    "length_0": dict(length=0),
    "length_64": dict(length=64, state=16),
}


def evaluate(inputs, delta_softplus=0, io_dtype="float32", groups_b=0, groups_c=0, layout=None):
    present = tuple(name for name in ALL_OPTIONAL if name in inputs)
    model = selective_scan_model(io_dtype, present=present, groups_b=groups_b, groups_c=groups_c,
                                 delta_softplus=delta_softplus, layout=layout)
    return ReferenceEvaluator(model, new_ops=[SelectiveScan]).run(None, inputs)


@pytest.mark.parametrize("layout", [0, 1], ids=["channels_first", "channels_last"])
@pytest.mark.parametrize("delta_softplus", [0, 1])
@pytest.mark.parametrize("case", sorted(CASES))
def test_graph_matches_reference(case, delta_softplus, layout):
    args = CASES[case]
    inputs = make_inputs(delta_softplus=bool(delta_softplus), layout=layout, **args)
    y, last_state = evaluate(inputs, delta_softplus, groups_b=args.get("groups_b", 0),
                             groups_c=args.get("groups_c", 0), layout=layout)
    ref_y, ref_state = reference(inputs, bool(delta_softplus), layout)
    assert y.dtype == np.float32 and last_state.dtype == np.float32
    assert y.shape == ref_y.shape and last_state.shape == ref_state.shape
    assert relative_error(y, ref_y) <= 1e-5
    assert relative_error(last_state, ref_state) <= 1e-5


def test_float16_io_keeps_float16_y():
    inputs = make_inputs(io_dtype="float16", delta_softplus=True)
    y, last_state = evaluate(inputs, 1, io_dtype="float16")
    ref_y, ref_state = reference(inputs, True)
    assert y.dtype == np.float16 and last_state.dtype == np.float32
    assert relative_error(y, ref_y) <= 5e-3
    assert relative_error(last_state, ref_state) <= 1e-5


def test_length_0_returns_the_initial_state():
    inputs = make_inputs(length=0)
    y, last_state = selective_scan(**inputs)
    assert y.shape == (2, 8, 0)
    np.testing.assert_array_equal(last_state, inputs["initial_state"])


def test_softplus_threshold_is_torchs():
    inputs = make_inputs(batch=1, dim=1, length=4, state=2, present=())
    inputs["delta"] = np.array([[[19.5, 20.0, 20.5, 100.0]]], np.float32)
    inputs["A"] = np.full((1, 2), -1e-4, np.float32)
    y, _ = selective_scan(**inputs, delta_softplus=True)
    assert np.all(np.isfinite(y))
    assert relative_error(y, reference(inputs, True)[0]) <= 1e-6


def test_wrong_shape_raises_the_contract_error():
    inputs = make_inputs()
    inputs["delta"] = inputs["delta"][:, :, :-1]
    with pytest.raises(InputShapeError, match=r"delta is \(2, 8, 15\), expected \(2, 8, 16\) to match u"):
        evaluate(inputs)


def test_wrong_dtype_raises_the_contract_error():
    inputs = make_inputs()
    inputs["A"] = inputs["A"].astype(np.float16)
    with pytest.raises(InputShapeError, match="A is float16, expected float32"):
        selective_scan(**inputs)


def test_attribute_outside_0_1_is_rejected():
    inputs = make_inputs()
    with pytest.raises(InputShapeError, match="delta_softplus is 2, expected 0 or 1"):
        evaluate(inputs, delta_softplus=2)
