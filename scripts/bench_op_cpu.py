#!/usr/bin/env python3
"""Time the SelectiveScan CPU op in ONNX Runtime against the PyTorch sequential scan.

The PyTorch side is the scan transformers runs when no fused kernels are installed
(MambaMixer.slow_forward): discrete_A = exp(A * dt) and deltaB_u = dt * B * u
materialised for all steps, then a Python loop over L doing h = dA_t * h + dBu_t and
y_t = h @ C_t; softplus(delta + bias) before and the D skip and silu(z) gate after
are timed on both sides. Both sides get float32 inputs with D, z, delta_bias and
softplus on, and all CPU cores. Prints a table and writes JSON (medians after one
warm-up run, the relative error between the two outputs, and the load average,
since other processes on a small machine slow both sides).

``--layout 1`` feeds the op channels-last tensors (u, delta, z, y (B, L, D); B, C
(B, L, N)), the layout the exported graph uses; the PyTorch side is unchanged.

Usage: python scripts/bench_op_cpu.py [--lengths 128 512 2048] [--layout 0|1] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--state", type=int, default=16)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the PyTorch scan")
    parser.add_argument("--ort-repeats", type=int, default=20, help="timed runs of the ORT op (cheap)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--layout", type=int, choices=(0, 1), default=0,
                        help="the op's layout attribute: 0 channels first, 1 channels last")
    parser.add_argument("--library", default=None, help="custom-op library (default: the built one)")
    parser.add_argument("--json", default=str(REPO / "results" / "bench_op_cpu.json"))
    return parser.parse_args(argv)


def make_inputs(batch, dim, length, state, seed=0):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    return {
        "u": rng.standard_normal((batch, dim, length)).astype(f32),
        "delta": rng.normal(-1.0, 1.0, (batch, dim, length)).astype(f32),
        "A": -np.exp(rng.uniform(-1.0, 2.5, (dim, state))).astype(f32),
        "B": rng.standard_normal((batch, state, length)).astype(f32),
        "C": rng.standard_normal((batch, state, length)).astype(f32),
        "D": rng.standard_normal(dim).astype(f32),
        "z": rng.standard_normal((batch, dim, length)).astype(f32),
        "delta_bias": rng.uniform(-4.0, -1.0, dim).astype(f32),
    }


def torch_sequential_scan(u, delta, A, B, C, D, z, delta_bias):
    """transformers' MambaMixer.slow_forward scan; B and C arrive (batch, L, N) as there."""
    import torch

    dt = torch.nn.functional.softplus(delta + delta_bias[None, :, None])
    discrete_A = torch.exp(A[None, :, None, :] * dt[:, :, :, None])
    deltaB_u = dt[:, :, :, None] * B[:, None, :, :] * u[:, :, :, None]
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=u.dtype)
    outputs = []
    for i in range(u.shape[2]):
        h = discrete_A[:, :, i, :] * h + deltaB_u[:, :, i, :]
        outputs.append(torch.matmul(h, C[:, i, :].unsqueeze(-1))[:, :, 0])
    y = torch.stack(outputs, dim=-1) + u * D[None, :, None]
    return y * torch.nn.functional.silu(z)


def median_seconds(run, repeats):
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def ort_session(library, threads, layout=0):
    import onnxruntime as ort

    sys.path.insert(0, str(REPO / "tests"))
    from support.one_node import selective_scan_model

    options = ort.SessionOptions()
    options.register_custom_ops_library(library)
    options.intra_op_num_threads = threads
    model = selective_scan_model(present=("D", "z", "delta_bias"), delta_softplus=1, layout=layout)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def bench_length(session, args, length):
    import torch

    inputs = make_inputs(args.batch, args.dim, length, args.state)
    # Channels last: every (B, X, L) tensor becomes (B, L, X).
    feeds = {k: (np.ascontiguousarray(v.transpose(0, 2, 1)) if args.layout == 1 and v.ndim == 3 else v)
             for k, v in inputs.items()}
    ort_time, ort_runs = median_seconds(lambda: session.run(None, feeds), args.ort_repeats)
    tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
    tensors["B"] = tensors["B"].transpose(1, 2)
    tensors["C"] = tensors["C"].transpose(1, 2)
    with torch.inference_mode():
        torch_time, torch_runs = median_seconds(lambda: torch_sequential_scan(**tensors), args.repeats)
        y_torch = torch_sequential_scan(**tensors).numpy()
    y_ort = session.run(None, feeds)[0]
    if args.layout == 1:
        y_ort = y_ort.transpose(0, 2, 1)
    error = float(np.max(np.abs(y_ort - y_torch)) / np.max(np.abs(y_torch)))
    return {"length": length, "ort_ms": ort_time * 1e3, "torch_ms": torch_time * 1e3,
            "speedup": torch_time / ort_time, "relative_error": error,
            "ort_runs_ms": [t * 1e3 for t in ort_runs], "torch_runs_ms": [t * 1e3 for t in torch_runs]}


def machine():
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "platform": platform.platform()}


def versions():
    import onnxruntime
    import torch

    return {"python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__, "numpy": np.__version__}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    sys.path.insert(0, str(REPO))
    from mamba_export.runtime.library import get_library_path

    torch.set_num_threads(args.threads)
    library = args.library or get_library_path()
    session = ort_session(library, args.threads, args.layout)
    rows = []
    load_before = os.getloadavg()
    print(f"SelectiveScan fp32 layout {args.layout}, B={args.batch} D={args.dim} N={args.state}, "
          "D/z/delta_bias/softplus on, "
          f"{args.threads} threads, median of {args.ort_repeats} (ORT) / {args.repeats} (PyTorch) runs")
    print(f"{'L':>6} {'ORT op (ms)':>12} {'PyTorch (ms)':>13} {'speedup':>8} {'rel. error':>11}")
    for length in args.lengths:
        row = bench_length(session, args, length)
        rows.append(row)
        print(f"{length:>6} {row['ort_ms']:>12.1f} {row['torch_ms']:>13.1f} {row['speedup']:>7.1f}x "
              f"{row['relative_error']:>11.2e}")
    report = {
        "benchmark": "SelectiveScan CPU op vs PyTorch sequential scan",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join([os.path.relpath(__file__, REPO)] + (argv or sys.argv[1:])),
        "config": {"batch": args.batch, "dim": args.dim, "state": args.state, "dtype": "float32",
                   "optional_inputs": ["D", "z", "delta_bias"], "delta_softplus": True, "layout": args.layout,
                   "threads": args.threads, "repeats": {"ort": args.ort_repeats, "torch": args.repeats},
                   "statistic": "median"},
        "machine": machine() | {"load_average_before": load_before, "load_average_after": os.getloadavg()},
        "versions": versions(),
        "results": rows,
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
