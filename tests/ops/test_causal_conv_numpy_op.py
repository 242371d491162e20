"""The numpy CausalConv1d (function and onnx.reference node) against the float64 reference.

Tolerances: tests/custom_ops/conv_cases.py (float32 1e-6, float16 1e-3, bfloat16 1e-2 of the sum's
magnitude; new_conv_state exact).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx.reference import ReferenceEvaluator

from mamba_export.errors import InputShapeError
from mamba_export.ops.numpy_op import NUMPY_OPS, causal_conv1d
from tests.custom_ops.conv_cases import ALL_OPTIONAL, TOLERANCE, check_parity, fuzzed_cases, make_inputs
from tests.support.one_conv_node import causal_conv_model


def evaluate(inputs, activation=0, io_dtype="float32"):
    present = tuple(name for name in ALL_OPTIONAL if name in inputs)
    model = causal_conv_model(io_dtype, present=present, activation=activation)
    return ReferenceEvaluator(model, new_ops=list(NUMPY_OPS)).run(None, inputs)


def direct(inputs, activation):
    return causal_conv1d(**inputs, activation=activation)


@settings(max_examples=60, deadline=None)
@given(case=fuzzed_cases(), activation=st.sampled_from([0, 1]), io_dtype=st.sampled_from(sorted(TOLERANCE)))
def test_fuzzed_function_matches_the_float64_reference(case, activation, io_dtype):
    check_parity(direct, io_dtype, activation, **case)


@pytest.mark.parametrize("io_dtype", ["float32", "float16"])
@pytest.mark.parametrize("present", [ALL_OPTIONAL, ()], ids=["all", "none"])
def test_graph_node_matches_the_float64_reference(io_dtype, present):
    _, (y, _) = check_parity(lambda i, a: evaluate(i, a, io_dtype), io_dtype, 1, present=present)
    assert y.shape == (2, 9, 6)


def test_outputs_keep_the_io_dtype():
    y, state = direct(make_inputs(io_dtype="float16"), 1)
    assert y.dtype == state.dtype == np.float16


def test_missing_attribute_means_no_activation():
    inputs = make_inputs()
    y_default = ReferenceEvaluator(causal_conv_model(activation=None), new_ops=list(NUMPY_OPS)).run(None, inputs)[0]
    np.testing.assert_array_equal(y_default, direct(inputs, 0)[0])
    assert not np.allclose(y_default, direct(inputs, 1)[0])


def test_wrong_shape_and_dtype_raise_the_contract_error():
    inputs = make_inputs()
    with pytest.raises(InputShapeError, match=r"conv_state is \(2, 6, 2\), expected \(2, 6, 3\)"):
        evaluate(inputs | {"conv_state": inputs["conv_state"][:, :, 1:]})
    with pytest.raises(InputShapeError, match="weight is float16, expected float32"):
        direct(inputs | {"weight": inputs["weight"].astype(np.float16)}, 0)


def test_activation_outside_the_table_is_rejected():
    with pytest.raises(InputShapeError, match="attribute activation is 2"):
        evaluate(make_inputs(), activation=2)
