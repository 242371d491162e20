#!/usr/bin/env python3
"""Time the three ONNX forms of a Mamba layer's causal conv on one ONNX Runtime provider.

* custom: one CausalConv1d node of our library (mamba_export/ops/causal_conv.py);
* standard: its standard-ops form (mamba_export/ops/onnx_standard_conv.py: Slices, Muls, Sum);
* conv: a depthwise ONNX Conv over [state, x] with transposes around it, the shape of
  the convolution in graphs exported before CausalConv1d existed.

All three compute the same thing (taps, bias, SiLU, state in and out; no mask) on
channels-last input. For each length the first call (a new shape: on CUDA, cuDNN's
algorithm search for the Conv) is timed apart from the median of the next runs. Inputs
and outputs stay on the provider's device (IO binding). Prints a table and writes JSON,
with the load average, since other processes on a small machine slow every form.

Usage: python scripts/bench_conv.py [--provider cpu|cuda] [--dtype float16] [--lengths 1 128 2048]
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
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=sorted(PROVIDERS), default="cpu")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--channels", type=int, default=1536)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1, 128, 2048])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--library", default=None, help="custom-op library (default: the built one)")
    parser.add_argument("--json", default=None, help="default results/bench_conv_<provider>.json")
    return parser.parse_args(argv)


def conv_model(io_dtype: str, width: int, channels: int):
    """Today's form: (B, L, C) -> Transpose -> Concat(state) -> depthwise Conv + bias -> SiLU -> Transpose."""
    from onnx import TensorProto, helper

    t = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}[io_dtype]
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_cl"], perm=[0, 2, 1]),
        helper.make_node("Concat", ["conv_state", "x_cl"], ["window"], axis=2),
        helper.make_node("Cast", ["weight"], ["w_t"], to=t),
        helper.make_node("Unsqueeze", ["w_t", "axis1"], ["w3"]),
        helper.make_node("Cast", ["bias"], ["b_t"], to=t),
        helper.make_node("Conv", ["window", "w3", "b_t"], ["v"], group=channels),
        helper.make_node("Sigmoid", ["v"], ["gate"]),
        helper.make_node("Mul", ["v", "gate"], ["act"]),
        helper.make_node("Transpose", ["act"], ["y"], perm=[0, 2, 1]),
        helper.make_node("Shape", ["window"], ["window_len"], start=2, end=3),
        helper.make_node("Sub", ["window_len", "columns"], ["tail_start"]),
        helper.make_node("Slice", ["window", "tail_start", "to_end", "axis2"], ["new_conv_state"]),
    ]
    graph = helper.make_graph(
        nodes, "conv",
        [helper.make_tensor_value_info("x", t, ["batch", "length", "channels"]),
         helper.make_tensor_value_info("weight", TensorProto.FLOAT, ["channels", width]),
         helper.make_tensor_value_info("bias", TensorProto.FLOAT, ["channels"]),
         helper.make_tensor_value_info("conv_state", t, ["batch", "channels", width - 1])],
        [helper.make_tensor_value_info("y", t, None), helper.make_tensor_value_info("new_conv_state", t, None)],
        initializer=[helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
                     helper.make_tensor("columns", TensorProto.INT64, [1], [width - 1]),
                     helper.make_tensor("to_end", TensorProto.INT64, [1], [2**62]),
                     helper.make_tensor("axis2", TensorProto.INT64, [1], [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    return model


def forms(io_dtype: str, width: int, channels: int):
    from mamba_export.ops.onnx_standard import rewrite_model
    from tests.support.one_conv_node import causal_conv_model

    present = ("bias", "conv_state")
    custom = causal_conv_model(io_dtype, present=present, activation=1)
    standard = causal_conv_model(io_dtype, present=present, activation=1)
    next(i for i in standard.graph.input if i.name == "weight").type.tensor_type.shape.dim[1].dim_value = width
    rewrite_model(standard)
    return {"custom": custom, "standard": standard, "conv": conv_model(io_dtype, width, channels)}


def session(model, args, library):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    if library:
        options.register_custom_ops_library(library)
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1" if args.provider == "cuda" else "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=[PROVIDERS[args.provider]])


def timed_runs(sess, feeds, args):
    """(first call seconds, median of the next runs) with inputs and outputs on the device."""
    import onnxruntime as ort

    device = "cuda" if args.provider == "cuda" else "cpu"
    binding = sess.io_binding()
    for name, value in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, device, 0))
    for output in sess.get_outputs():
        binding.bind_output(output.name, device)
    times = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        sess.run_with_iobinding(binding)
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[1:])


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    import onnxruntime as ort

    from mamba_export.runtime.library import get_library_path

    library = args.library or get_library_path()
    io = {"float32": np.float32, "float16": np.float16}[args.dtype]
    rng = np.random.default_rng(0)
    rows, load_before = [], os.getloadavg()
    print(f"causal conv {args.dtype} on {PROVIDERS[args.provider]}: B={args.batch} C={args.channels} "
          f"K={args.width}, bias, SiLU, state; first call and median of {args.repeats} more (ms)")
    print(f"{'L':>6} " + " ".join(f"{name + ' first':>14} {name:>9}" for name in ("custom", "standard", "conv")))
    for length in args.lengths:
        feeds = {"x": rng.standard_normal((args.batch, length, args.channels)).astype(io),
                 "weight": (rng.standard_normal((args.channels, args.width)) / 2).astype(np.float32),
                 "bias": rng.standard_normal(args.channels).astype(np.float32),
                 "conv_state": rng.standard_normal((args.batch, args.channels, args.width - 1)).astype(io)}
        row = {"length": length}
        # A fresh session per length and form, so the first call is the first at this shape.
        for name, model in forms(args.dtype, args.width, args.channels).items():
            first, median = timed_runs(session(model, args, library if name == "custom" else None), feeds, args)
            row[name] = {"first_ms": first * 1e3, "median_ms": median * 1e3}
        rows.append(row)
        print(f"{length:>6} " + " ".join(f"{row[n]['first_ms']:>14.3f} {row[n]['median_ms']:>9.3f}"
                                         for n in ("custom", "standard", "conv")))
    report = {
        "benchmark": "CausalConv1d custom node vs its standard form vs a depthwise Conv",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join([os.path.relpath(__file__, REPO)] + (argv or sys.argv[1:])),
        "config": {k: getattr(args, k) for k in ("provider", "dtype", "batch", "channels", "width", "repeats",
                                                  "threads")} | {"statistic": "median after the first call"},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "platform": platform.platform(), "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        "versions": {"python": platform.python_version(), "onnxruntime": ort.__version__, "numpy": np.__version__},
        "results": rows,
    }
    path = Path(args.json or REPO / "results" / f"bench_conv_{args.provider}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
