"""Every form of both ops reads packed inputs (offset attributes) as the contract says.

The float64 reference on the plain inputs is the oracle; the packed inputs embed B, C,
z and x in wider tensors with NaN around the windows (tests/custom_ops/packed_cases.py),
so a form that reads outside a window gives a NaN. Forms: the torch op, the NumPy op
under onnx.reference, and the standard-ops rewrite on every standard runtime. The
compiled kernels have their own tests (tests/custom_ops/test_packed_inputs_*.py).
Tolerance: float32 arithmetic over at most 12 steps against float64, 1e-5 relative.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator

import mamba_export.ops.torch_op  # noqa: F401  (registers the torch ops)
from mamba_export.ops.numpy_op import NUMPY_OPS
from mamba_export.ops.onnx_standard import rewrite_model
from tests.custom_ops import conv_cases
from tests.custom_ops.packed_cases import embed, pack_conv, pack_scan, packed_scan_model
from tests.custom_ops.projected_cases import make_projected, projected_model, projected_reference
from tests.custom_ops.scan_cases import make_inputs, reference, relative_error
from tests.support import standard_runtimes
from tests.support.one_conv_node import causal_conv_model

TOLERANCE = 1e-5
FORMS = ("torch", "numpy", *(f"standard:{runtime}" for runtime in standard_runtimes.RUNTIMES))
PRESENT = ("D", "z", "delta_bias", "initial_state")


def _run_model(form: str, model: onnx.ModelProto, feeds: dict) -> list:
    if form == "numpy":
        outputs = ReferenceEvaluator(model, new_ops=list(NUMPY_OPS)).run(None, feeds)
        return [np.asarray(o) for o in outputs]
    rewrite_model(model)
    onnx.checker.check_model(model, full_check=True)
    outputs = standard_runtimes.run(form.split(":", 1)[1], model, feeds)
    return [outputs[o.name] for o in model.graph.output]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("shared_bc", [True, False], ids=["one_bc_tensor", "two_tensors"])
@pytest.mark.parametrize("length", [1, 12])
def test_packed_scan_matches_the_reference(form, shared_bc, length):
    inputs = make_inputs(batch=2, dim=6, length=length, state=4, layout=1, delta_softplus=True, seed=length)
    ref_y, ref_state = reference(inputs, True, 1)
    packed, offsets = pack_scan(inputs, seed=length, shared_bc=shared_bc)
    if form == "torch":
        tensors = {k: torch.from_numpy(v) for k, v in packed.items()}
        c = tensors["B"] if shared_bc else tensors["C"]
        y, state = torch.ops.mamba_export.selective_scan(
            tensors["u"], tensors["delta"], tensors["A"], tensors["B"], c, tensors["D"], tensors["z"],
            tensors["delta_bias"], tensors["initial_state"], True, 1, offsets["b_offset"], offsets["c_offset"],
            offsets["z_offset"])
        y, state = y.numpy(), state.numpy()
    else:
        y, state = _run_model(form, packed_scan_model("float32", PRESENT, True, offsets, shared_bc), packed)
    assert y.shape == inputs["u"].shape and state.shape == ref_state.shape
    assert relative_error(y, ref_y) <= TOLERANCE and relative_error(state, ref_state) <= TOLERANCE


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("layer", [True, False], ids=["x_proj_output", "window"])
@pytest.mark.parametrize("length", [1, 12])
def test_projected_delta_matches_the_reference(form, layer, length):
    """delta_weight (D, R) times x_dt read from delta at delta_offset (NaN around x_dt)."""
    inputs, offsets = make_projected(batch=2, dim=6, length=length, state=4, rank=3, seed=length, layer=layer)
    ref_y, ref_state = projected_reference(inputs, offsets)
    if form == "torch":
        tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
        b = tensors.get("B", tensors["delta"])
        c = tensors.get("C", tensors["delta"])
        y, state = torch.ops.mamba_export.selective_scan(
            tensors["u"], tensors["delta"], tensors["A"], b, c, tensors["D"], tensors["z"], tensors["delta_bias"],
            tensors["initial_state"], True, 1, offsets.get("b_offset", -1), offsets.get("c_offset", -1), -1,
            tensors["delta_weight"], offsets["delta_offset"])
        y, state = y.numpy(), state.numpy()
    else:
        y, state = _run_model(form, projected_model("float32", inputs, offsets, shaped=True), inputs)
    assert y.shape == inputs["u"].shape and state.shape == ref_state.shape
    assert relative_error(y, ref_y) <= TOLERANCE and relative_error(state, ref_state) <= TOLERANCE


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("length", [0, 1, 9])
def test_packed_conv_matches_the_reference(form, length):
    inputs = conv_cases.make_inputs(length=length, channels=6, width=4, seed=length, poison=False)
    ref_y, ref_state = conv_cases.reference(inputs, 1)
    packed, x_offset = pack_conv(inputs, seed=length)
    if form == "torch":
        tensors = {k: torch.from_numpy(v) for k, v in packed.items()}
        y, state = torch.ops.mamba_export.causal_conv1d(tensors["x"], tensors["weight"], tensors["bias"],
                                                        tensors["conv_state"], tensors["mask"], 1, x_offset)
        y, state = y.numpy(), state.numpy()
    else:
        model = causal_conv_model("float32", activation=1, x_offset=x_offset)
        weight = next(i for i in model.graph.input if i.name == "weight")
        weight.type.tensor_type.shape.dim[1].dim_value = 4  # the standard form needs K statically
        y, state = _run_model(form, model, packed)
    assert y.shape == ref_y.shape and state.shape == ref_state.shape
    assert conv_cases.conv_error(y, ref_y, inputs) <= TOLERANCE
    np.testing.assert_array_equal(state, ref_state)


def test_the_window_is_what_the_offset_says():
    """embed() itself: the window sits at the offset, NaN elsewhere (the other tests rely on it)."""
    window = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    packed = embed(window, 2, 7)
    np.testing.assert_array_equal(packed[:, :, 2:5], window)
    assert np.isnan(packed[:, :, [0, 1, 5, 6]]).all()
