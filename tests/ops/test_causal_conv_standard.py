"""The standard-ops form of CausalConv1d: only standard ops (and no Conv) remain; plain ONNX Runtime and
onnx.reference match the float64 reference.

Tolerances: tests/custom_ops/conv_cases.py (float32 1e-6, float16 1e-3, bfloat16 1e-2 of the float32 sum's
magnitude; new_conv_state bit-exact).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx.reference import ReferenceEvaluator

from mamba_export.errors import UnsupportedModelError
from mamba_export.ops.causal_conv import DOMAIN
from mamba_export.ops.onnx_standard import rewrite_model
from tests.custom_ops.conv_cases import ALL_OPTIONAL, TOLERANCE, check_parity, fuzzed_cases, make_inputs, run
from tests.support.one_conv_node import causal_conv_model


def standard_model(io_dtype, present, activation, width):
    """The one-node model with K fixed in weight's declared shape, rewritten to standard ops."""
    model = causal_conv_model(io_dtype, present=present, activation=activation)
    weight = next(i for i in model.graph.input if i.name == "weight")
    weight.type.tensor_type.shape.dim[1].dim_value = width
    assert rewrite_model(model) == 1
    onnx.checker.check_model(model, full_check=True)
    return model


def on_ort(io_dtype, present):
    def compute(inputs, activation):
        model = standard_model(io_dtype, present, activation, inputs["weight"].shape[1])
        return run(ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]), inputs)
    return compute


def test_only_standard_ops_and_no_conv_remain():
    model = standard_model("float16", ALL_OPTIONAL, 1, 4)
    ops = {node.op_type for node in model.graph.node}
    assert all(node.domain in ("", "ai.onnx") for node in model.graph.node)
    assert not ops & {"Conv", "ConvTranspose", "ConvInteger"}
    assert DOMAIN not in {o.domain for o in model.opset_import}
    assert [o.name for o in model.graph.output] == ["y", "new_conv_state"]


@settings(max_examples=40, deadline=None)
@given(case=fuzzed_cases(), activation=st.sampled_from([0, 1]), io_dtype=st.sampled_from(sorted(TOLERANCE)))
def test_fuzzed_ort_matches_the_float64_reference(case, activation, io_dtype):
    check_parity(on_ort(io_dtype, case["present"]), io_dtype, activation, **case)


@pytest.mark.parametrize("width", [1, 4])
def test_reference_evaluator_runs_the_form(width):
    def compute(inputs, activation):
        model = standard_model("float32", ALL_OPTIONAL, activation, width)
        return ReferenceEvaluator(model).run(None, inputs)

    check_parity(compute, "float32", 1, width=width, length=11)


def test_chained_calls_equal_one_call():
    session = ort.InferenceSession(standard_model("float32", ALL_OPTIONAL, 1, 4).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    inputs = make_inputs(length=12)
    whole = run(session, inputs)
    first = {k: (v[:, :5] if k in ("x", "mask") else v) for k, v in inputs.items()}
    y1, middle = run(session, first)
    second = {k: (v[:, 5:] if k in ("x", "mask") else v) for k, v in inputs.items()} | {"conv_state": middle}
    y2, state = run(session, second)
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), whole[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(state, whole[1])


def test_a_width_unknown_statically_is_refused_by_name():
    model = causal_conv_model(activation=1)
    with pytest.raises(UnsupportedModelError, match="needs the kernel width K of weight 'weight' statically"):
        rewrite_model(model)


def test_weight_as_an_initializer_gives_the_width():
    model = causal_conv_model(present=("conv_state",), activation=0)
    model.graph.input.remove(next(i for i in model.graph.input if i.name == "weight"))

    def compute(inputs, activation):
        model.graph.initializer.append(onnx.numpy_helper.from_array(inputs["weight"], "weight"))
        rewrite_model(model)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {k: v for k, v in inputs.items() if k != "weight"})

    _, (y, state) = check_parity(compute, "float32", 0, present=("conv_state",), width=3)
    assert state.shape == (2, 6, 2) and y.shape == (2, 9, 6)
