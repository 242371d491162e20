#!/usr/bin/env python3
"""Time a block's residual sum and RMS norm in its ONNX forms on ONNX Runtime's CPU provider.

* ours: one ResidualRMSNorm node of our library (mamba_export/ops/residual_norm.py), x and
  weight in the I/O dtype, the residual stream float32;
* ort: ONNX Runtime's SkipSimplifiedLayerNormalization; for a half-precision dtype with a
  float32 stream it runs in float32 between two Casts (x up, y down), the form the exporter
  wrote before ResidualRMSNorm existed; for float32 it is the one node float32 graphs use.

Each form is one small graph, timed as the median of repeated runs after warm-up, with
inputs and outputs bound to host buffers (IO binding). Prints a table and writes JSON
with the load average, since other processes on a small machine slow every form.

Usage: python scripts/bench_norm.py [--dtypes float32 float16] [--rows 1 32 2048] [--hidden 768]
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
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float16"], default=["float32", "float16"])
    parser.add_argument("--rows", nargs="+", type=int, default=[1, 32, 2048])
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", default=str(REPO / "results" / "bench_norm_cpu.json"))
    return parser.parse_args(argv)


def ort_model(io_dtype: str):
    """x (T), residual (float32), weight (float32) -> y (T), residual_out (float32) with ORT's skip norm."""
    from onnx import TensorProto, helper

    from mamba_export.ops.ort_norm_nodes import MS_DOMAIN, SKIP_NORM_OP
    from tests.support.one_node import IR_VERSION, OPSET

    t = TensorProto.FLOAT16 if io_dtype == "float16" else TensorProto.FLOAT
    f = TensorProto.FLOAT
    nodes = []
    x, w, y = "x", "weight", "y"
    if t != f:
        # The exported graphs held the weight as a float32 initializer: no Cast for it.
        nodes.append(helper.make_node("Cast", ["x"], ["x32"], to=f))
        x, y = "x32", "y32"
    nodes.append(helper.make_node(SKIP_NORM_OP, [x, "residual", w], [y, "", "", "residual_out"], domain=MS_DOMAIN,
                                  epsilon=1e-5))
    if t != f:
        nodes.append(helper.make_node("Cast", ["y32"], ["y"], to=t))
    graph = helper.make_graph(nodes, "ort_norm", [
        helper.make_tensor_value_info("x", t, ["rows", "hidden"]),
        helper.make_tensor_value_info("residual", f, ["rows", "hidden"]),
        helper.make_tensor_value_info("weight", f, ["hidden"])],
        [helper.make_tensor_value_info("y", t, ["rows", "hidden"]),
         helper.make_tensor_value_info("residual_out", f, ["rows", "hidden"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)])
    model.ir_version = IR_VERSION
    return model


def time_form(session, feeds: dict, outputs: dict, repeats: int) -> float:
    """Median microseconds per run."""
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    for name, value in outputs.items():
        binding.bind_output(name, "cpu", 0, value.dtype, list(value.shape), value.ctypes.data)
    for _ in range(10):
        session.run_with_iobinding(binding)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run_with_iobinding(binding)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    import onnxruntime as ort

    from mamba_export.runtime.library import get_library_path
    from tests.support.one_norm_node import residual_norm_model

    options = ort.SessionOptions()
    options.register_custom_ops_library(get_library_path())
    options.intra_op_num_threads = args.threads
    rows_out = []
    print("| dtype | rows x H | ours (us) | ort (us) | ort / ours |")
    print("| --- | --- | --- | --- | --- |")
    for io_dtype in args.dtypes:
        sessions = {"ours": residual_norm_model(io_dtype, rank=2), "ort": ort_model(io_dtype)}
        sessions = {k: ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
                    for k, m in sessions.items()}
        for rows in args.rows:
            rng = np.random.default_rng(0)
            dtype = np.dtype(io_dtype)
            feeds = {"x": rng.standard_normal((rows, args.hidden)).astype(dtype),
                     "residual": rng.standard_normal((rows, args.hidden)).astype(np.float32),
                     "weight": rng.uniform(0.5, 1.5, args.hidden).astype(dtype)}
            times, results = {}, {}
            for form, session in sessions.items():
                if form == "ort":
                    feeds = dict(feeds, weight=feeds["weight"].astype(np.float32))
                outputs = {"y": np.empty((rows, args.hidden), dtype),
                           "residual_out": np.empty((rows, args.hidden), np.float32)}
                times[form] = time_form(session, feeds, outputs, args.repeats)
                results[form] = outputs
            # Both forms compute the same thing: the same stream bits, y within one rounding.
            np.testing.assert_array_equal(results["ours"]["residual_out"], results["ort"]["residual_out"])
            np.testing.assert_allclose(results["ours"]["y"].astype(np.float32), results["ort"]["y"].astype(np.float32),
                                       rtol=2e-3, atol=2e-3)
            rows_out.append({"dtype": io_dtype, "rows": rows, "hidden": args.hidden, "us": times})
            print(f"| {io_dtype} | {rows} x {args.hidden} | {times['ours']:.1f} | {times['ort']:.1f} | "
                  f"{times['ort'] / times['ours']:.2f} |")
    record = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "load_average": os.getloadavg(), "onnxruntime": ort.__version__, "threads": args.threads,
              "command": "python3 scripts/bench_norm.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "results": rows_out}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
