"""The custom-node translation: one SelectiveScan node as the contract says, any length after export."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from mamba_export.ops.onnx_custom import custom_translation_table, op_schema
from mamba_export.ops.selective_scan import ATTRIBUTES, DOMAIN, INPUTS, OP_TYPE, OP_VERSION, OUTPUTS
from tests.export.evaluators import reference_session
from tests.ops.test_torch_op import OP, make_inputs


def test_schema_follows_the_contract():
    schema = op_schema()
    assert (schema.domain, schema.name, schema.since_version) == (DOMAIN, OP_TYPE, OP_VERSION)
    assert [p.name for p in schema.inputs] == [spec.name for spec in INPUTS]
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    assert [p.option == optional for p in schema.inputs] == [not spec.required for spec in INPUTS]
    assert [p.name for p in schema.outputs] == [spec.name for spec in OUTPUTS]
    assert set(schema.attributes) == set(ATTRIBUTES)


class _Scan(torch.nn.Module):
    """Calls the op with D and delta_bias absent, then uses both outputs."""

    def forward(self, u, delta, A, B, C, z, initial_state):
        y, state = OP(u, delta, A, B, C, None, z, None, initial_state, True)
        return y * 2.0, state


def _export(tmp_path, batch=2, length=5):
    inputs = make_inputs(batch=batch, length=length)
    args = tuple(inputs[k] for k in ("u", "delta", "A", "B", "C", "z", "initial_state"))
    seq = torch.export.Dim("sequence", min=1)
    rows = torch.export.Dim("batch", min=1)
    tokens = {0: rows, 2: seq}
    shapes = (tokens, tokens, None, tokens, tokens, tokens, {0: rows})
    program = torch.onnx.export(_Scan(), args, dynamo=True, dynamic_shapes=shapes, opset_version=18,
                                input_names=["u", "delta", "A", "B", "C", "z", "h0"], output_names=["y", "h"],
                                custom_translation_table=custom_translation_table(), verbose=False)
    path = tmp_path / "scan.onnx"
    program.save(path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("custom"))


def test_one_custom_node_with_empty_names_for_absent_inputs(exported):
    model = onnx.load(exported)
    nodes = [n for n in model.graph.node if n.domain == DOMAIN]
    assert len(nodes) == 1
    node = nodes[0]
    assert node.op_type == OP_TYPE
    assert list(node.input)[:5] == ["u", "delta", "A", "B", "C"]
    assert node.input[5] == "" and node.input[7] == ""  # D, delta_bias
    assert node.input[6] == "z" and node.input[8] == "h0"
    assert {a.name: a.i for a in node.attribute} == {"delta_softplus": 1, "layout": 0, "b_offset": -1, "c_offset": -1,
                                                     "z_offset": -1, "delta_offset": -1}
    assert {o.domain: o.version for o in model.opset_import}[DOMAIN] == OP_VERSION
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] == "batch" and dims[2] == "sequence"


@pytest.mark.parametrize("batch,length", [(1, 1), (2, 3), (3, 19)])
def test_exported_graph_runs_at_lengths_other_than_traced(exported, batch, length):
    inputs = make_inputs(batch=batch, length=length, seed=length)
    feeds = {"u": inputs["u"], "delta": inputs["delta"], "A": inputs["A"], "B": inputs["B"],
             "C": inputs["C"], "z": inputs["z"], "h0": inputs["initial_state"]}
    y, state = reference_session(exported).run(None, {k: v.numpy() for k, v in feeds.items()})
    y_ref, state_ref = _Scan()(*feeds.values())
    assert y.shape == (batch, 6, length)
    np.testing.assert_allclose(y, y_ref.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state, state_ref.numpy(), rtol=1e-5, atol=1e-6)
