"""Time the SelectiveScan op on a CUDA GPU: our CUDA kernel through ONNX Runtime
against our Triton kernels and the PyTorch reference.

Two times per implementation and shape, both medians:
- kernel: GPU time of the scan kernel alone, from a CUPTI trace (torch.profiler
  records every kernel of the process, ONNX Runtime's too);
- call: host wall time of one synchronised call, what a caller sees, launch and
  framework overhead included.
Bandwidth is the fewest bytes the op must move (each input read once, each output
written once) over the kernel time, next to the device-to-device copy bandwidth
measured in the same run. Inputs rotate among several sets so that repeated calls
do not measure the L2 cache. Inputs follow a trained layer's ranges (softplus on,
D, z and delta_bias given; decode also carries a state in).

Usage: python scripts/bench_op_gpu.py --library build/custom_ops_cuda/libmamba_export_ops.so
           [--json results.json] [--iters 30] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the one-node model builder of the tests

DTYPES = {"float16": torch.float16, "float32": torch.float32}
PREFILL = [(b, d, n) for b in (1, 8) for d in (1536, 2560) for n in (128, 512, 2048, 8192)]
DECODE = [(b, d) for b in (1, 32) for d in (1536, 2560)]
STATE = 16
REFERENCE_MAX_LENGTH = 128
ROTATION_BYTES = 256 << 20  # input sets together exceed the 60 MB L2 several times


def require_cuda():
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    if "CUDAExecutionProvider" not in ort.get_available_providers() or not torch.cuda.is_available():
        raise SystemExit(f"needs a CUDA GPU and onnxruntime-gpu; onnxruntime {ort.__version__} has "
                         f"{ort.get_available_providers()}, torch.cuda {torch.cuda.is_available()}")


def cuda_session(library: str, dtype_name: str, decode: bool):
    """A one-node session on the CUDA provider; decode also takes the state in."""
    import onnxruntime as ort
    from support.one_node import selective_scan_model

    options = ort.SessionOptions()
    options.register_custom_ops_library(library)
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    present = ("D", "z", "delta_bias") + (("initial_state",) if decode else ())
    model = selective_scan_model(dtype_name, present=present, delta_softplus=1)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CUDAExecutionProvider"])


def randn(*shape):
    # torch's CUDA normal sampler returned non-finite values on tensors of 10^8
    # elements here; one in u poisons every later step of its row (ours and Triton
    # then agree on the count of non-finite outputs), so replace them and clip.
    return torch.nan_to_num(torch.randn(*shape, device="cuda"), nan=0.0).clamp_(-6.0, 6.0)


def random_inputs(batch, dim, length, dtype, decode):
    cuda = dict(device="cuda")
    inputs = dict(
        u=randn(batch, dim, length).to(dtype),
        delta=(randn(batch, dim, length) * 1.5 - 1.0).to(dtype),
        A=-torch.exp(torch.rand(dim, STATE, **cuda) * 3.5 - 1.0),
        B=randn(batch, STATE, length).to(dtype),
        C=randn(batch, STATE, length).to(dtype),
        D=randn(dim),
        z=randn(batch, dim, length).to(dtype),
        delta_bias=torch.rand(dim, **cuda) * 3.0 - 4.0,
    )
    if decode:
        inputs["initial_state"] = randn(batch, dim, STATE)
    return inputs


def input_sets(batch, dim, length, dtype, decode):
    one = sum(t.numel() * t.element_size() for t in random_inputs(1, 1, 1, dtype, decode).values())
    size = batch * dim * max(length, 1) * 4 * dtype.itemsize + one
    count = max(1, min(4, math.ceil(ROTATION_BYTES / size)))
    return [random_inputs(batch, dim, length, dtype, decode) for _ in range(count)]


def bind(session, inputs):
    """An IO binding of device tensors and its (preallocated) outputs."""
    import numpy as np

    onnx_type = {torch.float32: np.float32, torch.float16: np.float16}
    u = inputs["u"]
    outputs = dict(y=torch.empty_like(u),
                   last_state=torch.empty(u.shape[0], u.shape[1], STATE, device="cuda"))
    binding = session.io_binding()
    for bind_one, tensors in ((binding.bind_input, inputs), (binding.bind_output, outputs)):
        for name, t in tensors.items():
            bind_one(name, "cuda", 0, onnx_type[t.dtype], list(t.shape), t.data_ptr())
    return binding, outputs


def rotating(function, items):
    state = {"i": 0}

    def call():
        state["i"] = (state["i"] + 1) % len(items)
        return function(items[state["i"]])

    return call


def call_time_us(call, iters):
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        call()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def kernel_time_us(call, name_part, iters, names=None):
    """Median GPU duration of the kernels whose name contains name_part (None if none traced).

    The names of those kernels are added to ``names`` when a set is given.
    """
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        call()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            call()
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text()).get("traceEvents", [])
    kernels = [e for e in events if e.get("cat") == "kernel" and name_part in e.get("name", "")]
    if names is not None:
        names.update(e["name"].split("<")[0].split("::")[-1] for e in kernels)
    return statistics.median(e["dur"] for e in kernels) if kernels else None


def relative_error(out, ref) -> float:
    out, ref = out.double(), ref.double()
    return float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def nonfinite(tensor) -> int:
    return int((~torch.isfinite(tensor)).sum())


def copy_bandwidth_gbps(size=2 << 30, iters=20):
    src = torch.empty(size, dtype=torch.uint8, device="cuda").random_()
    dst = torch.empty_like(src)
    times = []
    for i in range(iters + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end) / 1e3)
    del src, dst
    return 2 * size / statistics.median(times) / 1e9


def op_bytes(batch, dim, length, element, decode):
    rows = 4 * batch * dim * length * element  # u, delta, z read; y written
    projections = 2 * batch * STATE * length * element  # B, C
    states = (2 if decode else 1) * batch * dim * STATE * 4  # last_state (and initial_state)
    return rows + projections + states


def step_inputs(inputs):
    """The Triton decode step's view of one-step scan inputs (state is the caller's)."""
    return dict(state=inputs["initial_state"].clone(), x=inputs["u"][:, :, 0], dt=inputs["delta"][:, :, 0],
                A=inputs["A"], B=inputs["B"][:, :, 0], C=inputs["C"][:, :, 0], D=inputs["D"],
                z=inputs["z"][:, :, 0], dt_bias=inputs["delta_bias"])


def triton_prefill(row, sets, ours, iters):
    from mamba_export.kernels.triton_scan import selective_scan

    call = rotating(lambda inputs: selective_scan(**inputs, delta_softplus=True), sets)
    row["triton_kernel_us"] = kernel_time_us(call, "scan_kernel", iters)
    row["triton_call_us"] = call_time_us(call, iters)
    y, state = selective_scan(**sets[0], delta_softplus=True)
    row["rel_err_y_vs_triton"] = relative_error(ours["y"], y)
    row["rel_err_state_vs_triton"] = relative_error(ours["last_state"], state)
    row["nonfinite_triton"] = nonfinite(y) + nonfinite(state)


def triton_decode(row, sets, ours, iters):
    from mamba_export.kernels.triton_state_update import selective_state_update

    steps = [step_inputs(inputs) for inputs in sets]
    call = rotating(lambda step: selective_state_update(**step, dt_softplus=True), steps)
    row["triton_kernel_us"] = kernel_time_us(call, "state_update_kernel", iters)
    row["triton_call_us"] = call_time_us(call, iters)
    step = step_inputs(sets[0])  # a fresh copy of the state ours started from
    y = selective_state_update(**step, dt_softplus=True)
    row["rel_err_y_vs_triton"] = relative_error(ours["y"][:, :, 0], y)
    row["rel_err_state_vs_triton"] = relative_error(ours["last_state"], step["state"])


def bench_one(session, dtype_name, batch, dim, length, iters, copy_gbps):
    dtype, decode = DTYPES[dtype_name], length == 1
    sets = input_sets(batch, dim, length, dtype, decode)
    bindings = [bind(session, inputs) for inputs in sets]
    call = rotating(lambda pair: session.run_with_iobinding(pair[0]), bindings)
    row = dict(kind="decode" if decode else "prefill", dtype=dtype_name, batch=batch, dim=dim,
               length=length, state=STATE, input_sets=len(sets))
    names = set()
    row["ort_kernel_us"] = kernel_time_us(call, "ScanKernel", iters, names)
    row["ort_kernel"] = ",".join(sorted(names))
    row["ort_call_us"] = call_time_us(call, iters)
    session.run_with_iobinding(bindings[0][0])  # outputs of set 0 for the parity checks
    torch.cuda.synchronize()
    row["nonfinite_ours"] = sum(nonfinite(t) for t in bindings[0][1].values())
    try:
        (triton_decode if decode else triton_prefill)(row, sets, bindings[0][1], iters)
    except Exception as error:  # report and go on: one failing comparison must not lose the rest
        row["triton_error"] = f"{type(error).__name__}: {error}"
    if not decode and length <= REFERENCE_MAX_LENGTH:
        from mamba_export.ops.reference import selective_scan as reference_scan

        ref = rotating(lambda inputs: reference_scan(**inputs, delta_softplus=True), sets)
        row["reference_call_us"] = call_time_us(ref, 3)
    row["bytes"] = op_bytes(batch, dim, length, dtype.itemsize, decode)
    if row["ort_kernel_us"]:
        row["ort_gbps"] = row["bytes"] / row["ort_kernel_us"] / 1e3
        row["ort_fraction_of_copy"] = row["ort_gbps"] / copy_gbps
    return row


def format_table(rows, copy_gbps) -> str:
    def cell(value, width, fmt=".1f"):
        return f"{value:>{width}{fmt}}" if isinstance(value, (int, float)) else f"{'-':>{width}}"

    lines = [f"device-to-device copy {copy_gbps:.0f} GB/s; medians in microseconds; "
             "kern = GPU kernel time, call = synchronised host call",
             f"{'kind':8}{'dtype':8}{'B':>3}{'D':>6}{'L':>6} {'ort kern':>9}{'ort call':>9}"
             f"{'trt kern':>9}{'trt call':>9}{'ref call':>10}{'GB/s':>6}{'%copy':>6}{'err/trt':>9}"]
    for r in rows:
        lines.append(
            f"{r['kind']:8}{r['dtype']:8}{r['batch']:>3}{r['dim']:>6}{r['length']:>6} "
            f"{cell(r.get('ort_kernel_us'), 9)}{cell(r.get('ort_call_us'), 9)}"
            f"{cell(r.get('triton_kernel_us'), 9)}{cell(r.get('triton_call_us'), 9)}"
            f"{cell(r.get('reference_call_us'), 10, '.0f')}{cell(r.get('ort_gbps'), 6, '.0f')}"
            f"{cell(r.get('ort_fraction_of_copy'), 6, '.0%')}{cell(r.get('rel_err_y_vs_triton'), 9, '.1e')}")
    return "\n".join(lines)


def environment() -> dict:
    import subprocess

    import onnxruntime as ort

    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                          "--format=csv,noheader"], capture_output=True, text=True, check=False)
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    return dict(date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), gpu=torch.cuda.get_device_name(0),
                nvidia_smi=smi.stdout.strip(), torch=torch.__version__, torch_cuda=torch.version.cuda,
                onnxruntime=ort.__version__, triton=triton_version, python=sys.version.split()[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", required=True, help="libmamba_export_ops.so built with CUDA")
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    parser.add_argument("--iters", type=int, default=30, help="timed calls per measurement")
    parser.add_argument("--quick", action="store_true", help="two shapes per kind (smoke test)")
    args = parser.parse_args(argv)
    require_cuda()
    started = time.time()
    copy_gbps = copy_bandwidth_gbps()
    shapes = [(b, d, n) for b, d, n in PREFILL] + [(b, d, 1) for b, d in DECODE]
    if args.quick:
        shapes = PREFILL[:2] + [(b, d, 1) for b, d in DECODE[:2]]
    rows = []
    for dtype_name in DTYPES:
        sessions = {decode: cuda_session(args.library, dtype_name, decode) for decode in (False, True)}
        for batch, dim, length in shapes:
            session = sessions[length == 1]
            rows.append(bench_one(session, dtype_name, batch, dim, length, args.iters, copy_gbps))
            print(json.dumps(rows[-1]), flush=True)
            torch.cuda.empty_cache()
    print(format_table(rows, copy_gbps))
    if args.json is not None:
        result = dict(environment=environment(), command=" ".join(sys.argv), iters=args.iters,
                      copy_gbps=copy_gbps, seconds=round(time.time() - started, 1), rows=rows)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
