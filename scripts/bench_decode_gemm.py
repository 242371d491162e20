#!/usr/bin/env python3
"""Decode's four projections per layer, timed as cuBLAS runs them for each weight layout.

At batch 1 a decode step's matrix products are matrix-vector products: each reads its whole
weight once, so at the GPU's bandwidth mamba-130m's four per layer need about 1.6 µs together.
Our profile of a step (results/gpu/2026-11-30-profile/) shows cuBLAS taking 4 to 7 µs for each,
with 2 to 48 thread blocks on 132 multiprocessors: too few blocks to draw the bandwidth. The
graph can hand cuBLAS the weight in either layout: ``MatMul(x, W)`` with W (K, N) (what the
export writes today, "nn") or a product with the transposed weight, W stored (N, K) and read
transposed (what ``com.microsoft.FusedMatMul(x, Wt, transB=1)`` or ``Gemm(transB=1)`` would
ask for, "tn"), and cuBLAS picks different kernels for the two. A Triton matrix-vector kernel
with many blocks ("gemv", batch 1 only) shows what the bandwidth allows.

This script needs only torch (and Triton for "gemv"), so it runs on a GPU machine without
ONNX Runtime. It times, in CUDA graphs so that launch costs count as in a replayed decode step:

- each projection alone (a graph of ``--repeats`` calls of it, per call);
- the whole step's products: every layer's four, each layer its own weights (so they stream
  from memory as in the model, not from L2), per step;

at batch sizes 1, 32 and 128, and a prefill of 2048 tokens (the layout must not slow it).
Each result is checked against float64. It prints a table and writes JSON:

    python3 scripts/bench_decode_gemm.py --json $OUT/bench_decode_gemm.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import zlib
from datetime import datetime, timezone

# (hidden, intermediate, dt_rank, state, layers) of the published configurations.
CONFIGS = {
    "mamba-130m": (768, 1536, 48, 16, 24),
    "mamba-1.4b": (2048, 4096, 128, 16, 48),
}


def projections(config: str) -> list[tuple[str, int, int]]:
    """(name, K, N) of a layer's four products as the export writes them (dt_proj reads the whole
    x_proj output with its weight zero-padded, so its K is dt_rank + 2 * state)."""
    hidden, inner, rank, state, _ = CONFIGS[config]
    packed = rank + 2 * state
    return [("in_proj", hidden, 2 * inner), ("x_proj", inner, packed), ("dt_proj", packed, inner),
            ("out_proj", inner, hidden)]


def make_gemv():
    """A Triton x (1, K) times W (N, K)^T: one program per ``BLOCK_N`` rows of W, K in tiles."""
    import triton
    import triton.language as tl

    @triton.jit
    def gemv_kernel(x_ptr, w_ptr, out_ptr, N, K, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        pid = tl.program_id(0)
        rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
        acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            cols = k0 + tl.arange(0, BLOCK_K)
            x = tl.load(x_ptr + cols, mask=cols < K, other=0.0).to(tl.float32)
            w = tl.load(w_ptr + rows[:, None] * K + cols[None, :], mask=(rows[:, None] < N) & (cols[None, :] < K),
                        other=0.0).to(tl.float32)
            acc += tl.sum(w * x[None, :], axis=1)
        tl.store(out_ptr + rows, acc.to(out_ptr.dtype.element_ty), mask=rows < N)

    def gemv(x, wt, out, block_n=8, block_k=256):
        n, k = wt.shape
        gemv_kernel[(triton.cdiv(n, block_n),)](x, wt, out, n, k, BLOCK_N=block_n, BLOCK_K=block_k)
        return out

    return gemv


class Case:
    """One projection's operands at one batch size, and a call per variant writing ``out``."""

    def __init__(self, torch, name, k, n, m, dtype, device, gemv):
        self.name, self.k, self.n, self.m = name, k, n, m
        g = torch.Generator(device=device).manual_seed(zlib.crc32(f"{name} {k} {n} {m}".encode()))
        self.x = (torch.randn(m, k, generator=g, device=device) / k ** 0.5).to(dtype)
        w = torch.randn(k, n, generator=g, device=device).to(dtype)
        self.w = w.contiguous()  # (K, N): ORT's MatMul weight
        self.wt = w.t().contiguous()  # (N, K): the transposed store
        self.out = torch.empty(m, n, device=device, dtype=dtype)
        self.torch = torch
        self.calls = {
            "nn": lambda: torch.matmul(self.x, self.w, out=self.out),
            "tn": lambda: torch.matmul(self.x, self.wt.t(), out=self.out),
        }
        if gemv is not None and m == 1:
            self.calls["gemv"] = lambda: gemv(self.x, self.wt, self.out)

    def rel_error(self, variant) -> float:
        torch = self.torch
        self.calls[variant]()
        torch.cuda.synchronize() if self.out.is_cuda else None
        want = self.x.double() @ self.w.double()
        return float((self.out.double() - want).norm() / want.norm().clamp_min(1e-30))


def graph_time_us(torch, fns, repeats: int, rounds: int = 7) -> float:
    """Median µs of one pass over ``fns`` (each a no-argument launch), replayed in a CUDA graph
    that holds ``repeats`` passes. Without CUDA, wall time of plain calls (a dry run)."""
    if not torch.cuda.is_available():
        start = time.perf_counter()
        for _ in range(repeats):
            for fn in fns:
                fn()
        return (time.perf_counter() - start) * 1e6 / repeats
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for fn in fns:  # warm up outside the capture (cuBLAS workspaces, Triton compiles)
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(repeats):
            for fn in fns:
                fn()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end) * 1e3 / repeats)
    times.sort()
    return times[len(times) // 2]


def kernel_names(torch, fn) -> list[str]:
    """The CUDA kernels one call launches (torch's profiler), for the record."""
    if not torch.cuda.is_available():
        return []
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sorted({e.name for e in prof.events() if e.device_type.name == "CUDA"})


def run(args) -> dict:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    if device == "cpu" and dtype != torch.float32:
        dtype = torch.float32  # a dry run: CPU matmul in half precision is not what is measured
    gemv = None
    if device == "cuda" and not args.no_gemv:
        try:
            gemv = make_gemv()
        except Exception as error:  # Triton missing or broken: the cuBLAS rows still come
            print(f"gemv skipped: {error}", file=sys.stderr)
    layers = CONFIGS[args.config][4] if args.layers is None else args.layers
    rows, steps = [], []
    for m in args.batches:
        cases = [Case(torch, name, k, n, m, dtype, device, gemv) for name, k, n in projections(args.config)]
        for case in cases:
            row = {"batch": m, "projection": case.name, "K": case.k, "N": case.n}
            for variant in case.calls:
                try:
                    row[f"{variant}_rel_error"] = case.rel_error(variant)
                    row[f"{variant}_us"] = graph_time_us(torch, [case.calls[variant]], args.repeats)
                    if args.kernels:
                        row[f"{variant}_kernels"] = kernel_names(torch, case.calls[variant])
                except Exception as error:
                    row[f"{variant}_error"] = f"{type(error).__name__}: {error}"
            rows.append(row)
        if m > args.step_max_batch:
            continue
        # The whole step: every layer's products with its own weights, in layer order.
        stack = [[Case(torch, name, k, n, m, dtype, device, gemv) for name, k, n in projections(args.config)]
                 for _ in range(layers)]
        step = {"batch": m, "layers": layers}
        for variant in stack[0][0].calls:
            try:
                step[f"{variant}_us"] = graph_time_us(torch, [c.calls[variant] for layer in stack for c in layer],
                                                      args.step_repeats)
            except Exception as error:
                step[f"{variant}_error"] = f"{type(error).__name__}: {error}"
        weight_bytes = sum(c.w.numel() * c.w.element_size() for layer in stack for c in layer)
        step["weight_MB"] = weight_bytes / 1e6
        step["bandwidth_bound_us"] = weight_bytes / args.bandwidth_gbs / 1e3
        steps.append(step)
        del stack
    return {"rows": rows, "steps": steps}


def print_tables(result: dict) -> None:
    print(f"{'batch':>5} {'projection':>10} {'K':>5} {'N':>5} {'nn us':>8} {'tn us':>8} {'gemv us':>8} "
          f"{'max rel err':>11}")
    for r in result["rows"]:
        errors = [v for k, v in r.items() if k.endswith("_rel_error")]
        cells = [f"{r[k]:8.2f}" if k in r else f"{'-':>8}" for k in ("nn_us", "tn_us", "gemv_us")]
        print(f"{r['batch']:>5} {r['projection']:>10} {r['K']:>5} {r['N']:>5} {' '.join(cells)} "
              f"{max(errors) if errors else float('nan'):11.2e}")
    print()
    print(f"{'batch':>5} {'layers':>6} {'step nn us':>10} {'step tn us':>10} {'step gemv us':>12} {'weights MB':>10} "
          f"{'at bandwidth us':>15}")
    for s in result["steps"]:
        cells = [f"{s[k]:10.1f}" if k in s else f"{'-':>10}" for k in ("nn_us", "tn_us")]
        gemv = f"{s['gemv_us']:12.1f}" if "gemv_us" in s else f"{'-':>12}"
        print(f"{s['batch']:>5} {s['layers']:>6} {' '.join(cells)} {gemv} {s['weight_MB']:10.1f} "
              f"{s['bandwidth_bound_us']:15.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="mamba-130m")
    parser.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 128, 2048])
    parser.add_argument("--layers", type=int, default=None, help="layers in the step (default: the config's)")
    parser.add_argument("--step-max-batch", type=int, default=128, help="time the whole step up to this batch")
    parser.add_argument("--repeats", type=int, default=100, help="calls per graph for one projection")
    parser.add_argument("--step-repeats", type=int, default=10, help="steps per graph for the whole step")
    parser.add_argument("--bandwidth-gbs", type=float, default=4800.0, help="for the bound column (H200: 4.8 TB/s)")
    parser.add_argument("--no-gemv", action="store_true")
    parser.add_argument("--kernels", action="store_true", help="record each call's kernel names")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import torch

    result = run(args)
    result.update({
        "config": args.config, "dtype": args.dtype, "command": " ".join(["python3", *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (dry run)",
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda},
    })
    print_tables(result)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
