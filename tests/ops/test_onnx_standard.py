"""The standard-ops rewrite: only standard ops remain, and ONNX Runtime, onnx.reference and OpenVINO
all match the float64 reference on it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from mamba_export.ops import reference
from mamba_export.ops.onnx_standard import rewrite_file, rewrite_model
from mamba_export.ops.selective_scan import DOMAIN
from tests.custom_ops.scan_cases import to_channels_last
from tests.support import standard_runtimes
from tests.support.one_node import selective_scan_model

OPTIONAL = ("D", "z", "delta_bias", "initial_state")
NUMPY = {"float32": np.float32, "float16": np.float16}


def _inputs(rng, io_dtype, groups_b=0, groups_c=0, batch=2, dim=12, state=5, length=9, a_scale=1.0):
    t = NUMPY[io_dtype]

    def bc(groups):
        return rng.standard_normal((batch, groups, state, length) if groups else (batch, state, length))

    return {
        "u": rng.standard_normal((batch, dim, length)).astype(t),
        "delta": (0.5 * rng.standard_normal((batch, dim, length))).astype(t),
        "A": (-a_scale * np.exp(rng.standard_normal((dim, state)))).astype(np.float32),
        "B": bc(groups_b).astype(t),
        "C": bc(groups_c).astype(t),
        "D": rng.standard_normal(dim).astype(np.float32),
        "z": rng.standard_normal((batch, dim, length)).astype(t),
        "delta_bias": rng.standard_normal(dim).astype(np.float32),
        "initial_state": rng.standard_normal((batch, dim, state)).astype(np.float32),
    }


def _run_rewritten(model: onnx.ModelProto, feeds: dict, runtime: str = "onnxruntime"):
    rewrite_model(model)
    onnx.checker.check_model(model, full_check=True)
    names = {i.name for i in model.graph.input}
    outputs = standard_runtimes.run(runtime, model, {k: v for k, v in feeds.items() if k in names})
    return outputs["y"], outputs["last_state"]


def _expected(feeds: dict, present, softplus: bool, layout: int = 0):
    tensors = {k: torch.from_numpy(v.astype(np.float64)) for k, v in feeds.items()
               if k not in OPTIONAL or k in present}
    y, state = reference.selective_scan(**tensors, delta_softplus=softplus, layout=layout)
    return y.numpy(), state.numpy()


def _relative(actual, expected) -> float:
    return float(np.abs(actual.astype(np.float64) - expected).max() / np.abs(expected).max())


# float32: the Scan computes in float32 over 9 steps, a few float32 ulps (1.2e-7) at most;
# float16: y is rounded to float16 on the way out (2^-11 = 4.9e-4 of the largest value);
# the state stays float32 in both.
TOLERANCE = {"float32": (1e-5, 1e-5), "float16": (2e-3, 1e-5)}


@pytest.mark.parametrize("runtime", standard_runtimes.RUNTIMES)
@pytest.mark.parametrize("layout", [0, 1], ids=["channels_first", "channels_last"])
@pytest.mark.parametrize("io_dtype", ["float32", "float16"])
@pytest.mark.parametrize("groups", [(0, 0), (3, 3), (0, 3), (3, 0)])
@pytest.mark.parametrize("present", [(), OPTIONAL])
def test_rewritten_node_matches_reference(io_dtype, groups, present, layout, runtime):
    rng = np.random.default_rng(sum(groups) + len(present))
    feeds = _inputs(rng, io_dtype, *groups)
    softplus = bool(present)
    if not softplus:
        feeds["delta"] = np.abs(feeds["delta"])  # a positive time step without softplus
    if layout == 1:
        feeds = to_channels_last(feeds)
    model = selective_scan_model(io_dtype, present=present, groups_b=groups[0], groups_c=groups[1],
                                 delta_softplus=int(softplus), layout=layout)
    y, state = _run_rewritten(model, feeds, runtime)
    y_ref, state_ref = _expected(feeds, present, softplus, layout)
    assert y.shape == feeds["u"].shape
    assert y.dtype == NUMPY[io_dtype] and state.dtype == np.float32
    y_tol, state_tol = TOLERANCE[io_dtype]
    assert _relative(y, y_ref) < y_tol
    assert _relative(state, state_ref) < state_tol


@pytest.mark.parametrize("runtime", standard_runtimes.RUNTIMES)
@pytest.mark.parametrize("length", [1, 2, 17])
def test_any_length_runs_in_one_graph(length, runtime):
    model = selective_scan_model("float32", present=OPTIONAL, delta_softplus=1)
    feeds = _inputs(np.random.default_rng(length), "float32", length=length)
    y, state = _run_rewritten(model, feeds, runtime)
    y_ref, state_ref = _expected(feeds, OPTIONAL, True)
    assert y.shape == (2, 12, length)
    assert _relative(y, y_ref) < 1e-5 and _relative(state, state_ref) < 1e-5


def test_long_sequence_with_fast_decay_does_not_underflow():
    # exp(cumsum(dt * A)) reaches 0 in float32 after a few dozen of these steps, so a
    # closed form dividing by it would give inf/nan; the recurrence must stay exact.
    model = selective_scan_model("float32", present=OPTIONAL, delta_softplus=1)
    feeds = _inputs(np.random.default_rng(7), "float32", length=600, a_scale=8.0)
    y, state = _run_rewritten(model, feeds)
    y_ref, state_ref = _expected(feeds, OPTIONAL, True)
    assert np.isfinite(y).all() and np.isfinite(state).all()
    # 600 float32 steps: rounding accumulates, but the decay keeps it bounded.
    assert _relative(y, y_ref) < 1e-4 and _relative(state, state_ref) < 1e-4


def test_only_standard_ops_remain():
    model = selective_scan_model("float32", present=OPTIONAL, delta_softplus=1)
    assert rewrite_model(model) == 1

    def domains(graph):
        for node in graph.node:
            yield node.domain
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    yield from domains(attribute.g)

    assert set(domains(model.graph)) == {""}
    assert DOMAIN not in {o.domain for o in model.opset_import}
    assert [i.name for i in model.graph.input][:5] == ["u", "delta", "A", "B", "C"]
    assert [o.name for o in model.graph.output] == ["y", "last_state"]


def test_rewrite_file_in_place(tmp_path):
    path = tmp_path / "scan.onnx"
    onnx.save(selective_scan_model("float32", present=OPTIONAL, delta_softplus=1), path)
    assert rewrite_file(path) == 1
    assert all(node.domain == "" for node in onnx.load(path).graph.node)


@pytest.mark.parametrize("center,spread", [(0.0, 60.0), (-8.0, 1.0)])
def test_softplus_threshold_extremes_and_small_steps(center, spread):
    # (0, 60): time steps far beyond both sides of the threshold (20): no overflow, and
    # softplus is the identity above it, as in torch. (-8, 1): the small steps of real
    # checkpoints (dt ~ 3e-4), where log(1 + exp(x)) in float32 would lose 2e-4 of dt.
    model = selective_scan_model("float32", present=OPTIONAL, delta_softplus=1)
    feeds = _inputs(np.random.default_rng(3), "float32", length=6, a_scale=0.01)
    wide = center + spread * np.random.default_rng(4).standard_normal(feeds["delta"].shape)
    feeds["delta"] = wide.astype(np.float32)
    feeds["delta_bias"][:] = 0.0
    feeds["initial_state"][:] = 0.0  # the state is then made of dt-weighted inputs only
    y, state = _run_rewritten(model, feeds)
    y_ref, state_ref = _expected(feeds, OPTIONAL, True)
    assert np.isfinite(y).all()
    assert _relative(y, y_ref) < 1e-5 and _relative(state, state_ref) < 1e-5
