"""Checking, when a CUDA session is built, that our custom nodes run on the CUDA provider.

ONNX Runtime assigns each node to the first provider that claims it and gives the
rest to the CPU provider without saying so. A custom node lands on the CPU when the
registered library has no CUDA kernel for it, and the session still runs, slowly,
copying every layer's activations between the devices. ONNX Runtime has no API that
lists node placements, and ``session.disable_cpu_ep_fallback`` would also refuse the
shape arithmetic ONNX Runtime deliberately keeps on the host. So a CUDA session
with custom nodes is built with profiling on, runs once on one token, and the
profile (which names the provider of every node it ran) must show each node of our
domain on CUDA; profiling then stops. The probe run also warms the session up.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from mamba_export import graph_io
from mamba_export.errors import BackendUnavailableError
from mamba_export.ops.selective_scan import DOMAIN
from mamba_export.runtime.dtypes import from_ort_type, to_ort_value
from mamba_export.runtime.library import CUDA_BUILD_COMMAND
from mamba_export.runtime.session import CUDA_PROVIDER


def custom_op_types(model_path: Path) -> dict:
    """Op type -> node count of every op of our domain in the graph (the weights are not read)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    counts: dict = {}
    for node in model.graph.node:
        if node.domain == DOMAIN:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def profile_prefix() -> str:
    """Where the probe's profile goes (a fresh temporary folder; the file is removed after reading)."""
    return str(Path(tempfile.mkdtemp(prefix="mamba_export_placement_")) / "profile")


def _probe_feeds(session, state_shapes: dict) -> dict:
    """One token of batch 1 from the zero state, in the dtypes the graph declares."""
    feeds = {graph_io.INPUT_IDS: np.zeros((1, 1), np.int64), graph_io.ATTENTION_MASK: np.ones((1, 1), np.int64)}
    for meta in session.get_inputs():
        if meta.name in feeds:
            continue
        kind = meta.name.split(".")[-1]
        feeds[meta.name] = np.zeros(state_shapes[kind], from_ort_type(meta.type, meta.name))
    return feeds


def op_providers(profile_path: str) -> dict:
    """Op type -> set of providers that ran its nodes, from an ONNX Runtime profile file."""
    events = json.loads(Path(profile_path).read_text())
    placed: dict = {}
    for event in events:
        args = event.get("args") or {}
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time") and "provider" in args:
            placed.setdefault(args.get("op_name"), set()).add(args["provider"])
    return placed


def check_custom_nodes_on_cuda(session, model_path: Path, state_shapes: dict, run_options=None) -> None:
    """Run the profiled probe once and raise :class:`BackendUnavailableError` unless every node of
    our domain ran on the CUDA provider. ``state_shapes``: kind -> shape at batch 1."""
    binding = session.io_binding()
    for name, value in _probe_feeds(session, state_shapes).items():
        binding.bind_ortvalue_input(name, to_ort_value(value))
    for meta in session.get_outputs():
        binding.bind_output(meta.name)
    try:
        session.run_with_iobinding(binding, run_options)
    except Exception as error:  # onnxruntime raises its own untyped exceptions
        raise BackendUnavailableError(f"the first run of the CUDA session of {model_path} failed: {error}") from error
    path = Path(session.end_profiling())
    try:
        placed = op_providers(str(path))
    finally:
        path.unlink(missing_ok=True)
        if path.parent.name.startswith("mamba_export_placement_"):
            path.parent.rmdir()
    check_placement(custom_op_types(model_path), placed)


def check_placement(ours: dict, placed: dict) -> None:
    """``ours``: op type -> node count in the graph; ``placed``: op type -> providers from the profile."""
    wrong = {op: sorted(placed.get(op, {"no provider (never ran)"}))
             for op in ours if placed.get(op) != {CUDA_PROVIDER}}
    if wrong:
        listed = ", ".join(f"{op} ({ours[op]} nodes) ran on {' and '.join(where)}"
                           for op, where in sorted(wrong.items()))
        raise BackendUnavailableError(
            f"custom nodes did not run on {CUDA_PROVIDER}: {listed}; the custom-op library registered no "
            f"CUDA kernel for them (build it with `{CUDA_BUILD_COMMAND}`), or use provider='cpu'")
