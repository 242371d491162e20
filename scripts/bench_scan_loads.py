"""Time the chunked CUDA scan's two ways of loading channels-last tiles in one process:
strided against staged through shared memory (cuda_chunked_staged.cuh, the default),
switched with the library's mamba_export_ops_set_scan_loads.

The node is fed as the lean graph feeds it: channels last (layout 1), B and C as windows
of one x_proj output (B, L, R + 2N) and z as the second half of the in_proj output
(B, L, 2D). For each shape and dtype it prints the median GPU time of the scan kernel
(CUPTI trace, bench_op_gpu.kernel_time_us) in both modes and checks that both give the
same bits of y. Inputs rotate among sets larger than the L2 cache.

Usage: python scripts/bench_scan_loads.py --library build/custom_ops_cuda/libmamba_export_ops.so
           [--json results/scan_loads.json] [--iters 30] [--quick]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))
import bench_op_gpu as gpu  # noqa: E402  (the timing helpers of the op benchmark)

STATE = gpu.STATE
SHAPES = [(b, d, n) for b in (1, 8) for d in (1536, 2560) for n in (512, 2048, 8192)]
QUICK = [(1, 1536, 2048), (8, 2560, 512)]
MODES = {"strided": 0, "staged": 1}


def packed_session(library: str, dtype_name: str, rank: int, dim: int):
    import onnxruntime as ort
    from support.one_node import selective_scan_model

    options = ort.SessionOptions()
    options.register_custom_ops_library(library)
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    offsets = {"b_offset": rank, "c_offset": rank + STATE, "z_offset": dim}
    model = selective_scan_model(dtype_name, present=("D", "z", "delta_bias"), delta_softplus=1, layout=1,
                                 offsets=offsets, shared_bc=True)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CUDAExecutionProvider"])


def packed_inputs(batch, dim, length, dtype, rank):
    cuda = dict(device="cuda")
    return dict(
        u=gpu.randn(batch, length, dim).to(dtype),
        delta=(gpu.randn(batch, length, dim) * 1.5 - 1.0).to(dtype),
        A=-torch.exp(torch.rand(dim, STATE, **cuda) * 3.5 - 1.0),
        B=gpu.randn(batch, length, rank + 2 * STATE).to(dtype),  # x_proj's output: dt, B, C
        D=gpu.randn(dim),
        z=gpu.randn(batch, length, 2 * dim).to(dtype),  # in_proj's output: x, z
        delta_bias=torch.rand(dim, **cuda) * 3.0 - 4.0,
    )


def bind(session, inputs, dim):
    onnx_type = {torch.float32: np.float32, torch.float16: np.float16}
    u = inputs["u"]
    outputs = dict(y=torch.empty_like(u), last_state=torch.empty(u.shape[0], dim, STATE, device="cuda"))
    binding = session.io_binding()
    for bind_one, tensors in ((binding.bind_input, inputs), (binding.bind_output, outputs)):
        for name, t in tensors.items():
            bind_one(name, "cuda", 0, onnx_type[t.dtype], list(t.shape), t.data_ptr())
    return binding, outputs


def measure(library, switch, batch, dim, length, dtype_name, iters) -> dict:
    dtype = gpu.DTYPES[dtype_name]
    rank = math.ceil(dim / 16)
    session = packed_session(library, dtype_name, rank, dim)
    size = batch * length * (4 * dim + rank + 2 * STATE) * dtype.itemsize
    sets = [packed_inputs(batch, dim, length, dtype, rank)
            for _ in range(max(1, min(4, math.ceil(gpu.ROTATION_BYTES / size))))]
    bindings = [bind(session, inputs, dim) for inputs in sets]
    row = dict(batch=batch, dim=dim, length=length, dtype=dtype_name)
    outputs = {}
    for mode, value in MODES.items():
        switch(value)
        call = gpu.rotating(lambda b: session.run_with_iobinding(b[0]), bindings)
        names: set = set()
        row[f"{mode}_kernel_us"] = gpu.kernel_time_us(call, "ScanKernel", iters, names)
        row[f"{mode}_kernels"] = sorted(names)
        session.run_with_iobinding(bindings[0][0])
        torch.cuda.synchronize()
        outputs[mode] = bindings[0][1]["y"].clone()
    switch(MODES["strided"])
    row["same_bits"] = bool(torch.equal(outputs["strided"], outputs["staged"]))
    if row["strided_kernel_us"] and row["staged_kernel_us"]:
        row["speedup"] = row["strided_kernel_us"] / row["staged_kernel_us"]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", required=True, help="libmamba_export_ops.so built with CUDA")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument("--iters", type=int, default=30, help="timed calls per measurement")
    parser.add_argument("--quick", action="store_true", help="two shapes (smoke test)")
    args = parser.parse_args(argv)
    gpu.require_cuda()
    library = ctypes.CDLL(str(args.library))

    def switch(mode: int) -> None:
        if library.mamba_export_ops_set_scan_loads(mode) < 0:
            raise SystemExit(f"{args.library} has no CUDA kernels to switch (mamba_export_ops_set_scan_loads)")

    rows = []
    print("| batch | D | L | dtype | strided us | staged us | speedup | same bits |")
    print("|---|---|---|---|---|---|---|---|")
    for batch, dim, length in (QUICK if args.quick else SHAPES):
        for dtype_name in gpu.DTYPES:
            row = measure(str(args.library), switch, batch, dim, length, dtype_name, args.iters)
            rows.append(row)
            print(f"| {batch} | {dim} | {length} | {dtype_name} | {row['strided_kernel_us']:.1f} | "
                  f"{row['staged_kernel_us']:.1f} | {row.get('speedup', float('nan')):.2f} | {row['same_bits']} |",
                  flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(device=torch.cuda.get_device_name(), rows=rows), indent=2))
    return 0 if all(row["same_bits"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
