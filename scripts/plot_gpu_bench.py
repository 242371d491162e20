"""Plot a GPU op benchmark JSON (scripts/bench_op_gpu.py) as a PNG: kernel time against L.

    python3 scripts/plot_gpu_bench.py results/gpu/2026-11-28-round3/bench_op_gpu.json docs/img/op_gpu_h200.png

One panel per dtype; a line per (engine, batch, D); the mamba-ssm figures quoted for
the same machine are drawn as markers where they exist (fp16, N = 16).
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# mamba-ssm 2.3.2 CUDA selective_scan_fn on the H200 (fp16, N=16, D/z/delta_bias/softplus/last state),
# microseconds by (batch, D, L), as quoted in the project's GPU issue.
MAMBA_SSM_FP16_US = {(1, 1536, 2048): 64, (1, 1536, 8192): 267, (8, 1536, 2048): 439, (1, 2560, 2048): 102}


def main(source: str, target: str) -> int:
    data = json.load(open(source))
    rows = [r for r in data["rows"] if r["kind"] == "prefill"]
    dtypes = sorted({r["dtype"] for r in rows})
    figure, axes = plt.subplots(1, len(dtypes), figsize=(6 * len(dtypes), 4.5), squeeze=False)
    for axis, dtype in zip(axes[0], dtypes, strict=True):
        for engine, key, style in (("ORT CUDA op", "ort_kernel_us", "-o"), ("Triton", "triton_kernel_us", "--x")):
            for batch, dim in sorted({(r["batch"], r["dim"]) for r in rows}):
                line = sorted((r["length"], r[key]) for r in rows
                              if r["dtype"] == dtype and r["batch"] == batch and r["dim"] == dim and r.get(key))
                if line:
                    axis.plot(*zip(*line, strict=True), style, label=f"{engine} B={batch} D={dim}")
        if dtype == "float16":
            for (_, _, length), us in MAMBA_SSM_FP16_US.items():
                axis.plot(length, us, "k*", markersize=10)
            axis.plot([], [], "k*", label="mamba-ssm CUDA (quoted)")
        axis.set(xscale="log", yscale="log", xlabel="sequence length L", ylabel="kernel time (us)",
                 title=f"SelectiveScan prefill, {dtype}, N=16")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    env = data.get("environment", {})
    figure.suptitle(f"{env.get('gpu', 'GPU')} — {env.get('date', '')}", fontsize=9)
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
