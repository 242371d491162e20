"""The CausalConv1d custom-node translation: one node as the contract says, any batch and length after export."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator

from mamba_export.ops.causal_conv import ATTRIBUTES, DOMAIN, INPUTS, OP_TYPE, OP_VERSION, OUTPUTS
from mamba_export.ops.numpy_op import NUMPY_OPS
from mamba_export.ops.onnx_custom import causal_conv_schema, custom_translation_table
from tests.custom_ops.conv_cases import check_parity, make_inputs
from tests.ops.test_causal_conv_torch_op import OP, as_torch


def test_schema_follows_the_contract():
    schema = causal_conv_schema()
    assert (schema.domain, schema.name, schema.since_version) == (DOMAIN, OP_TYPE, OP_VERSION)
    assert [p.name for p in schema.inputs] == [spec.name for spec in INPUTS]
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    assert [p.option == optional for p in schema.inputs] == [not spec.required for spec in INPUTS]
    assert [p.name for p in schema.outputs] == [spec.name for spec in OUTPUTS]
    assert [p.type_str for p in schema.inputs] == ["T", "tensor(float)", "tensor(float)", "T", "tensor(int64)"]
    assert set(schema.attributes) == set(ATTRIBUTES)


class _Conv(torch.nn.Module):
    """Calls the op with the bias absent, then uses both outputs."""

    def forward(self, x, weight, conv_state, mask):
        y, state = OP(x, weight, None, conv_state, mask, 1)
        return y * 2.0, state


def _feeds(batch, length, seed=0):
    x, weight, _, state, mask = as_torch(make_inputs(batch=batch, length=length, seed=seed))
    return {"x": x, "weight": weight, "conv_state": state, "mask": mask}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    rows, length = torch.export.Dim("batch", min=1), torch.export.Dim("sequence", min=1)
    shapes = ({0: rows, 1: length}, None, {0: rows}, {0: rows, 1: length})
    program = torch.onnx.export(_Conv(), tuple(_feeds(2, 5).values()), dynamo=True, dynamic_shapes=shapes,
                                opset_version=18, input_names=["x", "weight", "conv_state", "mask"],
                                output_names=["y", "state"], custom_translation_table=custom_translation_table(),
                                verbose=False)
    path = tmp_path_factory.mktemp("conv") / "conv.onnx"
    program.save(path)
    return path


def test_one_custom_node_with_an_empty_name_for_the_absent_bias(exported):
    model = onnx.load(exported)
    nodes = [n for n in model.graph.node if n.domain == DOMAIN]
    assert [n.op_type for n in nodes] == [OP_TYPE]
    assert list(nodes[0].input) == ["x", "weight", "", "conv_state", "mask"]
    assert {a.name: a.i for a in nodes[0].attribute} == {"activation": 1, "x_offset": -1}
    assert {o.domain: o.version for o in model.opset_import}[DOMAIN] == OP_VERSION


@pytest.mark.parametrize("batch,length", [(1, 1), (3, 19)])
def test_exported_graph_runs_at_other_sizes(exported, batch, length):
    feeds = _feeds(batch, length, seed=length)
    session = ReferenceEvaluator(str(exported), new_ops=list(NUMPY_OPS))
    y, state = session.run(None, {k: v.numpy() for k, v in feeds.items()})
    y_ref, state_ref = _Conv()(*feeds.values())
    assert y.shape == (batch, length, 6)
    np.testing.assert_allclose(y, y_ref.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(state, state_ref.numpy())


def test_exported_graph_holds_to_the_float64_reference(exported):
    session = ReferenceEvaluator(str(exported), new_ops=list(NUMPY_OPS))

    def compute(inputs, activation):
        y, state = session.run(None, {k: v for k, v in inputs.items() if k != "bias"})
        return y / 2.0, state

    check_parity(compute, "float32", 1, present=("conv_state", "mask"), length=13)
