"""The placement check of CUDA sessions (runtime/placement.py), run on CPU sessions here."""

from __future__ import annotations

import pytest

from mamba_export.errors import BackendUnavailableError
from mamba_export.options import RuntimeOptions
from mamba_export.runtime.folder import load_export_folder
from mamba_export.runtime.placement import (
    CUDA_PROVIDER,
    check_custom_nodes_on_cuda,
    check_placement,
    custom_op_types,
    op_providers,
)
from mamba_export.runtime.session import session_options


def profiled_cpu_session(folder, tmp_path):
    import onnxruntime as ort

    so = session_options(folder, RuntimeOptions())
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "profile")
    return ort.InferenceSession(str(folder.model_path), sess_options=so, providers=["CPUExecutionProvider"])


def test_custom_nodes_on_the_cpu_are_refused(exported, tmp_path):
    folder = load_export_folder(exported("custom"))
    layers = folder.num_layers
    assert custom_op_types(folder.model_path) == {"CausalConv1d": layers, "SelectiveScan": layers}
    session = profiled_cpu_session(folder, tmp_path)
    with pytest.raises(BackendUnavailableError, match=r"build-ops --cuda") as refused:
        check_custom_nodes_on_cuda(session, folder.model_path, folder.state_shapes(1))
    for op in ("CausalConv1d", "SelectiveScan"):
        assert f"{op} ({layers} nodes) ran on CPUExecutionProvider" in str(refused.value)
    assert not list(tmp_path.glob("profile*.json")), "the probe's profile is removed after reading"


def test_a_graph_without_custom_nodes_passes(exported, tmp_path):
    folder = load_export_folder(exported("standard"))
    assert custom_op_types(folder.model_path) == {}
    check_custom_nodes_on_cuda(profiled_cpu_session(folder, tmp_path), folder.model_path, folder.state_shapes(1))


def test_the_profile_names_the_provider_of_each_op(exported, tmp_path):
    folder = load_export_folder(exported("custom"))
    session = profiled_cpu_session(folder, tmp_path)
    session.run(None, _feeds(folder, session))
    placed = op_providers(session.end_profiling())
    assert placed["SelectiveScan"] == {"CPUExecutionProvider"}
    assert "MatMul" in placed


def _feeds(folder, session):
    import numpy as np

    from mamba_export.runtime.dtypes import from_ort_type

    shapes = folder.state_shapes(1)
    feeds = {"input_ids": np.zeros((1, 2), np.int64), "attention_mask": np.ones((1, 2), np.int64)}
    for meta in session.get_inputs():
        if meta.name not in feeds:
            feeds[meta.name] = np.zeros(shapes[meta.name.split(".")[-1]], from_ort_type(meta.type, meta.name))
    return feeds


@pytest.mark.parametrize("placed, match", [
    ({"SelectiveScan": {CUDA_PROVIDER, "CPUExecutionProvider"}}, "ran on CPUExecutionProvider and CUDA"),
    ({"MatMul": {CUDA_PROVIDER}}, r"SelectiveScan \(3 nodes\) ran on no provider \(never ran\)"),
])
def test_check_placement_names_what_ran_where(placed, match):
    with pytest.raises(BackendUnavailableError, match=match):
        check_placement({"SelectiveScan": 3}, placed)


def test_check_placement_accepts_every_custom_op_on_cuda():
    """Shape arithmetic on the CPU is ONNX Runtime's own choice and is not ours to refuse."""
    placed = {"SelectiveScan": {CUDA_PROVIDER}, "CausalConv": {CUDA_PROVIDER}, "Shape": {"CPUExecutionProvider"}}
    check_placement({"SelectiveScan": 3, "CausalConv": 3}, placed)
