"""Linear's Python implementations: the contract's checks, the float64 reference, the numpy node for
onnx.reference and the operator schema.

The float64 reference is held to x @ weight^T written out here with numpy; the numpy node is held
to the float64 reference, element by element, within a bound that scales with the sum of the
products' magnitudes (|x| @ |weight|^T): float32 sums of K products are off by about K * 2^-24 of
it, and a half-precision y adds one rounding (2^-11 for float16, 2^-8 for bfloat16).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from mamba_export.errors import InputShapeError
from mamba_export.ops import numpy_op, reference
from mamba_export.ops.linear import (
    ATTRIBUTES,
    DOMAIN,
    INPUTS,
    OP_TYPE,
    OP_VERSION,
    OUTPUTS,
    check_inputs,
    output_shape,
)
from mamba_export.ops.numpy_op import NUMPY_OPS
from mamba_export.ops.onnx_custom import linear_schema

NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
ONNX_DTYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}
# Of |x| @ |weight|^T, element by element (see the module docstring): K <= 96 here.
TOLERANCE = {"float32": 1e-5, "float16": 1e-3, "bfloat16": 1e-2}


def _inputs(x_shape, n, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(NUMPY_DTYPES[dtype])
    weight = (rng.standard_normal((n, x_shape[-1])) / 4).astype(NUMPY_DTYPES[dtype])
    return x, weight


def _float64_reference(x, weight) -> np.ndarray:
    """The reference on the very values given (half precision widened exactly)."""
    return reference.linear(torch.from_numpy(np.asarray(x, np.float64)),
                            torch.from_numpy(np.asarray(weight, np.float64))).numpy()


def _assert_within_bound(y, x, weight, dtype):
    x64, w64 = np.asarray(x, np.float64), np.asarray(weight, np.float64)
    bound = TOLERANCE[dtype] * (np.abs(x64) @ np.abs(w64).T)
    error = np.abs(np.asarray(y, np.float64) - _float64_reference(x, weight))
    assert np.all(error <= bound), float((error - bound).max())


def test_reference_is_x_times_weight_transposed():
    rng = np.random.default_rng(1)
    x, weight = rng.standard_normal((3, 5, 7)), rng.standard_normal((4, 7))
    expected = np.einsum("abk,nk->abn", x, weight)
    y = reference.linear(torch.from_numpy(x), torch.from_numpy(weight))
    assert y.dtype == torch.float64 and tuple(y.shape) == (3, 5, 4)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_half_precision_reference_sums_in_float32():
    """300 * 300 overflows float16; in float32 the two products cancel exactly."""
    x = torch.tensor([[300.0, 300.0]], dtype=torch.float16)
    weight = torch.tensor([[300.0, -300.0], [0.5, 0.25]], dtype=torch.float16)
    y = reference.linear(x, weight)
    assert y.dtype == torch.float16
    assert y.tolist() == [[0.0, 225.0]]


@pytest.mark.parametrize("dtype", list(TOLERANCE))
@pytest.mark.parametrize(("x_shape", "n"), [((1, 1, 96), 40), ((2, 7, 33), 17), ((5, 16), 61), ((24,), 8)])
def test_numpy_op_matches_float64(dtype, x_shape, n):
    x, weight = _inputs(x_shape, n, dtype, seed=len(x_shape) + n)
    y = numpy_op.linear(x, weight)
    assert y.dtype == x.dtype and y.shape == output_shape(x.shape, weight.shape) == (*x_shape[:-1], n)
    _assert_within_bound(y, x, weight, dtype)


def test_numpy_op_sums_in_float32_and_rounds_once():
    x = np.array([[300.0, 300.0]], np.float16)
    weight = np.array([[300.0, -300.0], [0.5, 0.25]], np.float16)
    assert numpy_op.linear(x, weight).tolist() == [[0.0, 225.0]]


def test_empty_inner_gives_zeros_and_no_rows_give_empty():
    np.testing.assert_array_equal(numpy_op.linear(np.ones((2, 3, 0), np.float32), np.ones((5, 0), np.float32)),
                                  np.zeros((2, 3, 5), np.float32))
    assert numpy_op.linear(np.ones((0, 4), np.float32), np.ones((5, 4), np.float32)).shape == (0, 5)
    assert reference.linear(torch.ones(2, 0), torch.ones(3, 0)).tolist() == [[0.0] * 3] * 2


def _linear_model(dtype: str) -> onnx.ModelProto:
    node = helper.make_node(OP_TYPE, ["x", "weight"], ["y"], domain=DOMAIN)
    graph = helper.make_graph([node], "linear", [helper.make_tensor_value_info("x", ONNX_DTYPES[dtype], None),
                                                 helper.make_tensor_value_info("weight", ONNX_DTYPES[dtype], None)],
                              [helper.make_tensor_value_info("y", ONNX_DTYPES[dtype], None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                   helper.make_opsetid(DOMAIN, OP_VERSION)])


@pytest.mark.parametrize("dtype", list(ONNX_DTYPES))
def test_numpy_node_in_the_evaluator_matches_float64(dtype):
    x, weight = _inputs((2, 3, 48), 20, dtype, seed=5)
    (y,) = ReferenceEvaluator(_linear_model(dtype), new_ops=list(NUMPY_OPS)).run(None, {"x": x, "weight": weight})
    assert y.dtype == x.dtype and y.shape == (2, 3, 20)
    _assert_within_bound(y, x, weight, dtype)


@pytest.mark.parametrize(("shapes", "message"), [
    ({"x": (2, 8)}, "required input weight is missing"),
    ({"weight": (3, 8)}, "required input x is missing"),
    ({"x": (), "weight": (3, 1)}, "x has rank 0 (), expected rank >= 1 (..., K)"),
    ({"x": (2, 8), "weight": (8,)}, "weight is (8,), expected rank 2 (N, K)"),
    ({"x": (2, 8), "weight": (2, 3, 8)}, "weight is (2, 3, 8), expected rank 2 (N, K)"),
    ({"x": (2, 8), "weight": (8, 3)}, "weight is (8, 3), expected (N, 8) to match x's last dimension (K)"),
    ({"x": (2, 8), "weight": (3, 8), "bias": (3,)}, "unknown inputs ['bias']"),
])
def test_check_inputs_names_the_input(shapes, message):
    with pytest.raises(InputShapeError, match=r"^Linear: ") as caught:
        check_inputs(shapes)
    assert message in str(caught.value)


@pytest.mark.parametrize(("dtypes", "message"), [
    ({"x": "float16", "weight": "float32"}, "weight is float32, expected float16 to match x"),
    ({"x": "float32", "weight": "bfloat16"}, "weight is bfloat16, expected float32 to match x"),
    ({"x": "float64", "weight": "float64"}, "x is float64, expected one of float32, float16, bfloat16"),
])
def test_check_inputs_names_the_wrong_dtype(dtypes, message):
    with pytest.raises(InputShapeError) as caught:
        check_inputs({"x": (2, 8), "weight": (3, 8)}, dtypes)
    assert message in str(caught.value)


def test_check_inputs_resolves_the_sizes():
    dims = check_inputs({"x": (2, 3, 8), "weight": (5, 8)}, {"x": "bfloat16", "weight": "bfloat16"})
    assert (dims.rows, dims.inner, dims.outer) == (6, 8, 5)


def test_numpy_and_reference_refuse_bad_inputs_by_name():
    with pytest.raises(InputShapeError, match="weight is float16, expected float32"):
        numpy_op.linear(np.ones((2, 4), np.float32), np.ones((3, 4), np.float16))
    with pytest.raises(InputShapeError, match=r"weight is \(4, 3\), expected \(N, 4\)"):
        numpy_op.linear(np.ones((2, 4), np.float32), np.ones((4, 3), np.float32))
    with pytest.raises(InputShapeError, match=r"weight is \(4,\), expected rank 2"):
        reference.linear(torch.ones(2, 4), torch.ones(4))


def test_schema_follows_the_contract():
    schema = linear_schema()
    assert (schema.domain, schema.name, schema.since_version) == (DOMAIN, OP_TYPE, OP_VERSION)
    assert [p.name for p in schema.inputs] == [spec.name for spec in INPUTS] == ["x", "weight"]
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    assert [p.option == optional for p in schema.inputs] == [False, False]
    assert [p.name for p in schema.outputs] == [spec.name for spec in OUTPUTS] == ["y"]
    assert [p.type_str for p in [*schema.inputs, *schema.outputs]] == ["T", "T", "T"]
    assert set(schema.attributes) == set(ATTRIBUTES) == set()
    (constraint,) = schema.type_constraints
    assert set(constraint.allowed_type_strs) == {"tensor(float)", "tensor(float16)", "tensor(bfloat16)"}
