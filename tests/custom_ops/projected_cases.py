"""The projected delta of SelectiveScan (delta_weight, delta_offset), shared by the CPU and CUDA tests.

A projected case takes a plain channels-last case and replaces delta by a low-rank x_dt
(B, L, R) and a weight (D, R) float32, in one of two forms:

* window: x_dt sits at a random offset of a wider (B, L, W) tensor whose other channels are
  NaN, so a kernel that reads outside the window or with the wrong row stride puts a NaN
  into an output;
* layer: delta, B and C are one tensor [x_dt, B, C] (the x_proj output of a Mamba layer),
  read at delta_offset 0, b_offset R and c_offset R + N, as the exporter's fused graph has it.

Each is held to the float64 reference run on the very values the kernel received.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from mamba_export.ops.reference import selective_scan as reference_scan
from mamba_export.ops.selective_scan import DOMAIN, INPUT_NAMES, OP_TYPE, OP_VERSION, OUTPUT_NAMES
from tests.custom_ops.packed_cases import embed
from tests.custom_ops.scan_cases import (
    NUMPY_DTYPES,
    STATE_TOLERANCE,
    Y_TOLERANCE,
    make_inputs,
    relative_error,
    remembered_reference,
    run,
)
from tests.support.one_node import IR_VERSION, ONNX_DTYPES, OPSET, io_dtypes

OPTIONAL = ("D", "z", "delta_bias", "initial_state")


def make_projected(batch=2, dim=8, length=5, state=4, rank=3, io_dtype="float32", seed=0, present=OPTIONAL,
                   layer=False) -> tuple[dict, dict]:
    """(inputs, offset attributes) of a projected case: softplus ranges as a trained layer has them
    (x_dt ~ N(0, 1) in T, weight rows of norm ~1.5, so delta ~ N(0, 1.5) before a bias of -4..-1)."""
    inputs = make_inputs(batch=batch, dim=dim, length=length, state=state, present=present, delta_softplus=True,
                         io_dtype=io_dtype, seed=seed, layout=1)
    rng = np.random.default_rng(seed + 1)
    x_dt = rng.standard_normal((batch, length, rank)).astype(NUMPY_DTYPES[io_dtype])
    inputs["delta_weight"] = (rng.standard_normal((dim, rank)) * (1.5 / np.sqrt(max(rank, 1)))).astype(np.float32)
    if layer:
        inputs["delta"] = np.concatenate([x_dt, inputs.pop("B"), inputs.pop("C")], axis=2)
        return inputs, {"delta_offset": 0, "b_offset": rank, "c_offset": rank + state}
    lead, tail = (int(v) for v in rng.integers(0, 5, 2))
    inputs["delta"] = embed(x_dt, lead, lead + rank + tail)
    return inputs, {"delta_offset": lead}


def projected_model(io_dtype: str, inputs: dict, offsets: dict, delta_softplus: int = 1,
                    shaped: bool = False) -> onnx.ModelProto:
    """One SelectiveScan node (layout 1) on these inputs; without B in ``inputs`` (the layer form)
    B and C are read from delta's graph input. Shapes are left out, so malformed tensors reach the
    kernel's own checks, unless ``shaped`` (symbolic dimensions of each input's rank, for
    onnx.checker)."""
    declared = io_dtypes(io_dtype)
    node_inputs = [name if name in inputs else "" for name in INPUT_NAMES]
    if "B" not in inputs:
        node_inputs[INPUT_NAMES.index("B")] = node_inputs[INPUT_NAMES.index("C")] = "delta"
    while node_inputs and node_inputs[-1] == "":
        node_inputs.pop()
    node = helper.make_node(OP_TYPE, node_inputs, list(OUTPUT_NAMES), domain=DOMAIN, layout=1,
                            delta_softplus=delta_softplus, **offsets)
    graph = helper.make_graph(
        [node], "projected_scan",
        [helper.make_tensor_value_info(name, ONNX_DTYPES[declared[name]],
                                       [f"{name}_{i}" for i in range(np.ndim(value))] if shaped else None)
         for name, value in inputs.items()],
        [helper.make_tensor_value_info(name, ONNX_DTYPES[declared[name]], shape if shaped else None)
         for name, shape in zip(OUTPUT_NAMES, (["batch", "length", "dim"], ["batch", "dim", "state"]), strict=True)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid(DOMAIN, OP_VERSION)])
    model.ir_version = IR_VERSION
    return model


def projected_reference(inputs: dict, offsets: dict):
    """The float64 oracle on exactly these values -> (y, last_state) as float64 numpy (read-only)."""
    import torch

    def compute():
        tensors = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in inputs.items()}
        if "B" not in tensors:
            tensors["B"] = tensors["C"] = tensors["delta"]
        y, state = reference_scan(**tensors, delta_softplus=True, layout=1, **offsets)
        return y.numpy(), state.numpy()

    return remembered_reference(inputs, ("projected", tuple(sorted(offsets.items()))), compute)


def check_projected(make_session, io_dtype: str, layer: bool = False, **case):
    """Run one projected case through the ORT kernel and hold y and last_state to the float64
    reference with the plain scan's tolerances (the projection is float32 and not rounded to T,
    so it adds only float32 rounding); returns (inputs, offsets, y, last_state)."""
    inputs, offsets = make_projected(io_dtype=io_dtype, layer=layer, **case)
    y, last_state = run(make_session(projected_model(io_dtype, inputs, offsets)), inputs)
    ref_y, ref_state = projected_reference(inputs, offsets)
    assert y.shape == ref_y.shape and last_state.shape == ref_state.shape
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(last_state)), f"read outside x_dt: {offsets}"
    y_error, state_error = relative_error(y, ref_y), relative_error(last_state, ref_state)
    assert y_error <= Y_TOLERANCE[io_dtype], f"y relative error {y_error:.3g}"
    assert state_error <= STATE_TOLERANCE, f"last_state relative error {state_error:.3g}"
    return inputs, offsets, y, last_state
