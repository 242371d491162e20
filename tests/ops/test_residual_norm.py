"""ResidualRMSNorm's Python implementations: the contract's checks, the float64 reference,
the torch op (eager and fake), the numpy node for onnx.reference and the ONNX translation.

The float64 reference is held to the contract's formula written out independently here,
and to transformers' MambaRMSNorm on the summed stream; every other implementation is
held to the float64 reference with the tolerances of tests/custom_ops/norm_cases.py.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from transformers.models.mamba.modeling_mamba import MambaRMSNorm

from mamba_export.errors import InputShapeError
from mamba_export.ops import numpy_op, reference, torch_op  # noqa: F401  (torch_op registers the op)
from mamba_export.ops.numpy_op import NUMPY_OPS
from mamba_export.ops.onnx_custom import custom_translation_table, residual_norm_schema
from mamba_export.ops.onnx_standard import rewrite_model
from mamba_export.ops.residual_norm import (
    ATTRIBUTES,
    DOMAIN,
    INPUTS,
    OP_TYPE,
    OP_VERSION,
    OUTPUTS,
    check_epsilon,
    check_inputs,
)
from tests.custom_ops.norm_cases import EPSILON, TOLERANCE, check_parity, make_inputs
from tests.support.one_norm_node import residual_norm_model

OP = torch.ops.mamba_export.residual_rms_norm
TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _as_torch(inputs: dict) -> dict:
    return {k: torch.from_numpy(np.asarray(v, np.float32)).to(TORCH_DTYPES[str(v.dtype)]) for k, v in inputs.items()}


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()


def test_reference_is_the_contracts_formula():
    rng = np.random.default_rng(1)
    x, residual, weight = rng.standard_normal((3, 5, 7)), rng.standard_normal((3, 5, 7)), rng.standard_normal(7)
    s = x + residual
    expected = weight * s / np.sqrt(np.mean(s * s, axis=-1, keepdims=True) + 0.01)
    y, total = reference.residual_rms_norm(*(torch.from_numpy(a) for a in (x, weight, residual)), 0.01)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(total.numpy(), s)
    y_first, total_first = reference.residual_rms_norm(torch.from_numpy(x), torch.from_numpy(weight), None, 0.01)
    np.testing.assert_allclose(y_first.numpy(), weight * x / np.sqrt(np.mean(x * x, -1, keepdims=True) + 0.01),
                               rtol=1e-12)
    np.testing.assert_array_equal(total_first.numpy(), x)


def test_float32_reference_is_transformers_norm_of_the_sum():
    inputs = _as_torch(make_inputs(shape=(2, 4, 32), seed=2))
    norm = MambaRMSNorm(32, eps=EPSILON)
    norm.weight.data = inputs["weight"].clone()
    y, total = OP(inputs["x"], inputs["weight"], inputs["residual"], EPSILON)
    expected_total = inputs["x"] + inputs["residual"]
    torch.testing.assert_close(total, expected_total, rtol=0, atol=0)
    torch.testing.assert_close(y, norm(expected_total), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("io_dtype", TOLERANCE)
@pytest.mark.parametrize("residual", [True, False], ids=["residual", "first_block"])
def test_torch_op_matches_float64(io_dtype, residual):
    def compute(inputs):
        t = _as_torch(inputs)
        y, total = OP(t["x"], t["weight"], t.get("residual"), EPSILON)
        assert y.dtype == t["x"].dtype and total.dtype == torch.float32
        return _to_numpy(y), total.numpy()

    check_parity(compute, io_dtype, residual=residual, shape=(3, 5, 40), seed=3)


def test_torch_op_never_returns_its_input():
    x = torch.randn(2, 8)
    _, total = OP(x, torch.ones(8), None, EPSILON)
    assert total.data_ptr() != x.data_ptr()
    torch.testing.assert_close(total, x, rtol=0, atol=0)


def test_fake_gives_shapes_and_dtypes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        y, total = OP(torch.empty(2, 3, 8, dtype=torch.float16), torch.empty(8, dtype=torch.float16),
                      torch.empty(2, 3, 8), EPSILON)
    assert (y.shape, y.dtype, total.shape, total.dtype) == ((2, 3, 8), torch.float16, (2, 3, 8), torch.float32)


@pytest.mark.parametrize("io_dtype", TOLERANCE)
@pytest.mark.parametrize("residual", [True, False], ids=["residual", "first_block"])
def test_numpy_node_matches_float64(io_dtype, residual):
    evaluator = ReferenceEvaluator(residual_norm_model(io_dtype, residual=residual, epsilon=EPSILON),
                                   new_ops=list(NUMPY_OPS))
    check_parity(lambda inputs: tuple(evaluator.run(None, inputs)), io_dtype, residual=residual,
                 shape=(4, 3, 24), seed=4)


@pytest.mark.parametrize(("shapes", "message"), [
    ({"x": (2, 8)}, "required input weight is missing"),
    ({"x": (), "weight": (1,)}, "x has rank 0 (), expected rank >= 1 (..., H)"),
    ({"x": (2, 8), "weight": (7,)}, "weight is (7,), expected (8,) to match x (H)"),
    ({"x": (2, 8), "weight": (8,), "residual": (2, 7)}, "residual is (2, 7), expected (2, 8) to match x"),
    ({"x": (2, 8), "weight": (8,), "bias": (8,)}, "unknown inputs ['bias']"),
])
def test_check_inputs_names_the_input(shapes, message):
    with pytest.raises(InputShapeError, match=r"^ResidualRMSNorm: ") as caught:
        check_inputs(shapes)
    assert message in str(caught.value)


@pytest.mark.parametrize(("dtypes", "message"), [
    ({"x": "float16", "weight": "float16", "residual": "float16"},
     "residual is float16, expected float32 (the residual stream is always float32)"),
    ({"x": "float16", "weight": "float32"}, "weight is float32, expected float16 to match x"),
    ({"x": "float64", "weight": "float64"}, "x is float64, expected one of float32, float16, bfloat16"),
])
def test_check_inputs_names_the_wrong_dtype(dtypes, message):
    shapes = {name: (2, 8) if name != "weight" else (8,) for name in dtypes}
    with pytest.raises(InputShapeError) as caught:
        check_inputs(shapes, dtypes)
    assert message in str(caught.value)


@pytest.mark.parametrize("epsilon", [-1e-6, float("inf"), float("nan"), "1e-6", True])
def test_bad_epsilon_is_refused(epsilon):
    with pytest.raises(InputShapeError, match="attribute epsilon is"):
        check_epsilon(epsilon)


def test_numpy_and_torch_refuse_bad_inputs_by_name():
    with pytest.raises(InputShapeError, match="residual is float16"):
        numpy_op.residual_rms_norm(np.ones((2, 4), np.float16), np.ones(4, np.float16), np.ones((2, 4), np.float16))
    with pytest.raises(InputShapeError, match="weight is"):
        OP(torch.ones(2, 4), torch.ones(5), None, EPSILON)


def test_schema_follows_the_contract():
    schema = residual_norm_schema()
    assert (schema.domain, schema.name, schema.since_version) == (DOMAIN, OP_TYPE, OP_VERSION)
    assert [p.name for p in schema.inputs] == [spec.name for spec in INPUTS]
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    assert [p.option == optional for p in schema.inputs] == [not spec.required for spec in INPUTS]
    assert [p.name for p in schema.outputs] == [spec.name for spec in OUTPUTS]
    assert [p.type_str for p in schema.inputs] == ["T", "T", "tensor(float)"]
    assert [p.type_str for p in schema.outputs] == ["T", "tensor(float)"]
    assert set(schema.attributes) == set(ATTRIBUTES)


class _TwoNorms(torch.nn.Module):
    """A first norm without a residual, then one with the stream it returned (as the exporter chains them)."""

    def forward(self, x, weight):
        y0, stream = OP(x, weight, None, 1e-5)
        y1, stream = OP(y0 * 2.0, weight, stream, 1e-5)
        return y1, stream


def test_translation_writes_one_node_per_call_and_runs(tmp_path):
    x, weight = torch.randn(2, 5, 16, dtype=torch.float16), torch.rand(16, dtype=torch.float16) + 0.5
    rows = torch.export.Dim("rows", min=1)
    program = torch.onnx.export(_TwoNorms(), (x, weight), dynamo=True, dynamic_shapes=({0: rows}, None),
                                opset_version=18, input_names=["x", "weight"], output_names=["y", "stream"],
                                custom_translation_table=custom_translation_table(), verbose=False)
    path = tmp_path / "norms.onnx"
    program.save(path)
    model = onnx.load(path)
    assert [n.op_type for n in model.graph.node if n.domain == DOMAIN] == [OP_TYPE, OP_TYPE]
    assert not [n for n in model.graph.node if n.op_type == "Cast"]
    first, second = (n for n in model.graph.node if n.op_type == OP_TYPE)
    assert list(first.input) == ["x", "weight"] or list(first.input) == ["x", "weight", ""]
    assert second.input[2] == first.output[1]
    assert {a.name: round(a.f, 9) for a in second.attribute} == {"epsilon": 1e-5}
    x3 = torch.randn(3, 5, 16, dtype=torch.float16)
    y, stream = ReferenceEvaluator(str(path), new_ops=list(NUMPY_OPS)).run(None, {"x": x3.numpy(),
                                                                                  "weight": weight.numpy()})
    y_ref, stream_ref = _TwoNorms()(x3, weight)
    np.testing.assert_array_equal(stream, stream_ref.numpy())
    np.testing.assert_allclose(y.astype(np.float32), y_ref.float().numpy(), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("io_dtype", TOLERANCE)
@pytest.mark.parametrize("residual", [True, False], ids=["residual", "first_block"])
def test_standard_form_matches_float64(io_dtype, residual):
    model = residual_norm_model(io_dtype, residual=residual, epsilon=EPSILON)
    model.opset_import[0].version = 18
    assert rewrite_model(model) == 1
    assert not [n for n in model.graph.node if n.domain == DOMAIN]
    assert DOMAIN not in {o.domain for o in model.opset_import}
    evaluator = ReferenceEvaluator(model)
    check_parity(lambda inputs: tuple(evaluator.run(None, inputs)), io_dtype, residual=residual,
                 shape=(4, 3, 24), seed=6)
