"""Where the time of one prefill and one decode step goes, by ONNX Runtime's profiler.

Runs an export folder on the CUDA provider (or the CPU's; no CUDA graph, so each node is seen) and
prints, per op type, how many nodes ran and their summed kernel time, for a prefill of
each length asked and for one decode step at each batch size; writes the same as JSON.
The count of decode nodes is what a CUDA graph replays per token.

With ``--first-calls``, it instead runs each given prompt length twice, lengths the session has
not seen (after one warm-up prefill of 16 tokens), and compares the first call with the second per op
type and per node, with the time the run spent outside any node: where the extra milliseconds
of a first call at a new length go. ONNX Runtime times a node's host side, which holds whatever
the first launch of a kernel costs (loading its module, picking a cuBLAS algorithm); allocations
and shape planning fall outside the nodes. Run it once more with ``CUDA_MODULE_LOADING=EAGER`` to
see how much of the difference is the lazy loading of kernels.

    python3 scripts/profile_gpu.py out/mamba-130m --lengths 2048 --batches 1 32 --json $OUT/profile.json
    python3 scripts/profile_gpu.py out/mamba-130m --first-calls 17 33 65 129 1025 --json $OUT/first.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def _session(folder: Path, profile_prefix: str, provider: str):
    import onnxruntime as ort

    from mamba_export.options import RuntimeOptions
    from mamba_export.runtime.folder import load_export_folder
    from mamba_export.runtime.session import providers_for, session_options

    options = RuntimeOptions(provider=provider, cuda_graph=False if provider == "cuda" else None)
    export = load_export_folder(folder)
    so = session_options(export, options)
    so.enable_profiling = True
    so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(export.model_path), so, providers=providers_for(options)), export


def _feeds(session, batch: int, length: int, vocab: int, rng) -> dict:
    type_map = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}
    feeds = {}
    for i in session.get_inputs():
        if i.name == "input_ids":
            feeds[i.name] = rng.integers(2, vocab, size=(batch, length), dtype=np.int64)
        elif i.name == "attention_mask":
            feeds[i.name] = np.ones((batch, length), np.int64)
        else:
            shape = [batch] + [int(d) for d in i.shape[1:]]
            if i.type == "tensor(bfloat16)":
                import ml_dtypes

                feeds[i.name] = np.zeros(shape, ml_dtypes.bfloat16)
            else:
                feeds[i.name] = np.zeros(shape, type_map[i.type])
    return feeds


def _summarise(events: list, run_index: int) -> dict:
    """Kernel nodes of the ``run_index``-th model run: count and microseconds per op type."""
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    run = runs[run_index]
    start, end = run["ts"], run["ts"] + run["dur"]
    per_op = defaultdict(lambda: {"nodes": 0, "us": 0})
    providers = defaultdict(int)
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        if not start <= e["ts"] <= end:
            continue
        op = e.get("args", {}).get("op_name", "?")
        per_op[op]["nodes"] += 1
        per_op[op]["us"] += e["dur"]
        providers[e.get("args", {}).get("provider", "?")] += 1
    total_nodes = sum(v["nodes"] for v in per_op.values())
    total_us = sum(v["us"] for v in per_op.values())
    return {"run_us": run["dur"], "kernel_nodes": total_nodes, "kernel_us": total_us,
            "providers": dict(providers), "per_op": dict(sorted(per_op.items(), key=lambda kv: -kv[1]["us"]))}


def _node_times(events: list, run_index: int) -> dict:
    """Host microseconds per node name in the ``run_index``-th model run."""
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    run = runs[run_index]
    start, end = run["ts"], run["ts"] + run["dur"]
    times = defaultdict(int)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and start <= e["ts"] <= end:
            times[e["name"][:-len("_kernel_time")]] += e["dur"]
    return dict(times)


def first_calls(session, export, lengths: list, prefix_events, rng) -> dict:
    """Each length run twice (new to the session), then first against second from the profile."""
    vocab = int(export.info["vocab_size"])
    session.run(None, _feeds(session, 1, 16, vocab, rng))  # the session's own first run, not a new length's
    order = []
    for length in lengths:
        feeds = _feeds(session, 1, length, vocab, rng)
        for call in ("first", "second"):
            wall = time.perf_counter()
            session.run(None, feeds)
            order.append((length, call, (time.perf_counter() - wall) * 1e3))
    events = prefix_events()
    result = {}
    for index, (length, call, wall_ms) in enumerate(order, start=1):
        summary = _summarise(events, index)
        summary["wall_ms"] = wall_ms
        summary["outside_nodes_us"] = summary["run_us"] - summary["kernel_us"]
        summary["nodes_us"] = _node_times(events, index)
        result.setdefault(str(length), {})[call] = summary
    for length, calls in result.items():
        first, second = calls["first"], calls["second"]
        print(f"\nlength {length}: first {first['wall_ms']:.2f} ms, second {second['wall_ms']:.2f} ms; "
              f"outside nodes {first['outside_nodes_us'] / 1e3:.2f} against {second['outside_nodes_us'] / 1e3:.2f} ms")
        print("op | first us | second us | extra us")
        ops = sorted(first["per_op"], key=lambda op: -(first["per_op"][op]["us"]
                                                        - second["per_op"].get(op, {"us": 0})["us"]))
        for op in ops:
            a, b = first["per_op"][op]["us"], second["per_op"].get(op, {"us": 0})["us"]
            print(f"{op} | {a} | {b} | {a - b}")
        extra = {name: us - second["nodes_us"].get(name, 0) for name, us in first["nodes_us"].items()}
        top = sorted(extra.items(), key=lambda kv: -kv[1])[:8]
        print("nodes with the most extra us: " + ", ".join(f"{name} {us}" for name, us in top))
        calls["top_extra_nodes"] = top
        for call in calls.values():
            if isinstance(call, dict):
                call.pop("nodes_us", None)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--provider", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--first-calls", type=int, nargs="+", default=None,
                        help="instead: the first call at each of these new prompt lengths against the second")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import onnxruntime as ort

    rng = np.random.default_rng(0)
    prefix = f"/tmp/mamba_export_profile_{int(time.time())}"
    session, export = _session(args.folder, prefix, args.provider)
    if args.first_calls:
        import os

        result = {"folder": str(args.folder), "onnxruntime": ort.__version__,
                  "cuda_module_loading": os.environ.get("CUDA_MODULE_LOADING", "(default: lazy)"),
                  "first_calls": first_calls(session, export, args.first_calls,
                                             lambda: json.loads(Path(session.end_profiling()).read_text()), rng)}
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
        return 0
    vocab = int(export.info["vocab_size"])
    plan = [("prefill", 1, length) for length in args.lengths] + [("decode", batch, 1) for batch in args.batches]
    measured = []  # (label, index of the profiled run)
    run_count = 0
    for kind, batch, length in plan:
        feeds = _feeds(session, batch, length, vocab, rng)
        for _ in range(args.warmup):
            session.run(None, feeds)
            run_count += 1
        session.run(None, feeds)
        measured.append((f"{kind} batch={batch} L={length}", run_count))
        run_count += 1
    events = json.loads(Path(session.end_profiling()).read_text())
    result = {"folder": str(args.folder), "onnxruntime": ort.__version__, "info": {
        k: export.info.get(k) for k in ("dtype", "backend", "num_layers", "hidden_size")}, "runs": {}}
    for label, index in measured:
        summary = _summarise(events, index)
        result["runs"][label] = summary
        print(f"\n{label}: run {summary['run_us'] / 1e3:.2f} ms, {summary['kernel_nodes']} kernel nodes, "
              f"kernels {summary['kernel_us'] / 1e3:.2f} ms, providers {summary['providers']}")
        print("op | nodes | us")
        for op, row in summary["per_op"].items():
            print(f"{op} | {row['nodes']} | {row['us']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
