#!/usr/bin/env python3
"""Time a decode step's greedy choice in its two ONNX forms on ONNX Runtime's CPU provider.

* ours: one LastArgMax node of our library (mamba_export/ops/last_argmax.py), reading the last
  position of the (batch, positions, vocab) logits where they lie;
* onnx: the nodes export/next_tokens.py writes without it (add_onnx_nodes): Gather of the last
  position, Cast to float32 (float16 only), ArgMax.

Both graphs take logits with a symbolic positions axis (the head of a ``--logits all`` export),
fed one position as in decode. Each form is timed as the median of repeated runs after warm-up,
inputs and outputs bound to host buffers (IO binding), on one intra-op thread by default. The
two forms' tokens are checked to be equal. Prints a table and writes JSON with the machine, the
versions and the load average, since other processes on a small machine slow every form.

Usage: python scripts/bench_last_argmax.py [--dtypes float32 float16] [--batch 1 8 32 128]
       [--vocab 50280] [--json results/bench_last_argmax_cpu.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from bench_norm import time_form  # noqa: E402  (the CPU timing loop over an IO binding)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float16"], default=["float32", "float16"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8, 32, 128])
    parser.add_argument("--vocab", type=int, default=50280)
    parser.add_argument("--positions", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", default=str(REPO / "results" / "bench_last_argmax_cpu.json"))
    return parser.parse_args(argv)


def onnx_model(io_dtype: str):
    """logits (batch, positions, vocab) -> tokens (batch, 1) with the exporter's ONNX nodes."""
    from onnx import TensorProto

    from mamba_export.export.next_tokens import add_onnx_nodes
    from tests.support.one_argmax_node import last_argmax_model

    model = last_argmax_model(io_dtype)  # the same input and output; its node is replaced
    del model.graph.node[:]
    del model.opset_import[1:]
    (logits,) = model.graph.input
    add_onnx_nodes(model, logits.name, logits)
    model.graph.node[-1].output[0] = "tokens"
    assert [n.op_type for n in model.graph.node] == ["Gather"] + (["Cast"] if io_dtype != "float32" else []) + [
        "ArgMax"]
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.INT64
    return model


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    import onnxruntime as ort

    from mamba_export.runtime.library import get_library_path
    from tests.support.one_argmax_node import last_argmax_model

    library = get_library_path()
    options = ort.SessionOptions()
    options.register_custom_ops_library(library)
    options.intra_op_num_threads = args.threads
    rows_out = []
    print("| dtype | batch x vocab | ours (us) | onnx (us) | onnx / ours |")
    print("| --- | --- | --- | --- | --- |")
    for io_dtype in args.dtypes:
        models = {"ours": last_argmax_model(io_dtype), "onnx": onnx_model(io_dtype)}
        sessions = {k: ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
                    for k, m in models.items()}
        for batch in args.batch:
            rng = np.random.default_rng(batch)
            feeds = {"logits": rng.standard_normal((batch, args.positions, args.vocab)).astype(io_dtype)}
            times, results = {}, {}
            for form, session in sessions.items():
                outputs = {"tokens": np.full((batch, 1), -1, np.int64)}
                times[form] = time_form(session, feeds, outputs, args.repeats)
                results[form] = outputs["tokens"]
            np.testing.assert_array_equal(results["ours"], results["onnx"])
            rows_out.append({"dtype": io_dtype, "batch": batch, "positions": args.positions, "vocab": args.vocab,
                             "us": times})
            print(f"| {io_dtype} | {batch} x {args.vocab} | {times['ours']:.1f} | {times['onnx']:.1f} | "
                  f"{times['onnx'] / times['ours']:.2f} |")
    record = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": cpu_name(), "cpus": os.cpu_count(), "load_average": os.getloadavg(),
              "python": platform.python_version(), "onnxruntime": ort.__version__, "numpy": np.__version__,
              "threads": args.threads, "repeats": args.repeats, "library": str(library),
              "command": "python3 scripts/bench_last_argmax.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "results": rows_out}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
