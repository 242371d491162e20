"""End-to-end benchmark: exported graphs on ONNX Runtime against transformers, side by side in one run.

Measures, for one model (a preset with random weights by default), through the public
API (``ORTMambaForCausalLM``):
  * export time and peak memory (each export in its own process),
  * prefill latency at the given lengths, batch 1 (median of --repeats): ``model(ids)``
    on the CPU; on CUDA ``generate(ids, max_new_tokens=1)``, which keeps the states on
    the GPU as a user's generation does,
  * decode tokens/s at each batch: (new tokens - 1) / (time(N new) - time(1 new)),
    so the prompt's prefill cancels out,
  * on CUDA, the first call at each of --first-call-lengths (prompt lengths the session
    has not seen) against the second call at that length,
for ORT with the custom op, ORT with standard ops, and transformers in PyTorch
(with no fused kernels installed). On CUDA each backend runs twice: with the runtime's
defaults (states on the GPU through IO binding, decode steps in CUDA graphs) and with
``cuda_graph=False`` (decode only).

On the CPU both engines get the same number of threads (--threads, by default
PyTorch's own default, its count of physical cores): ONNX Runtime's intra-op pool
and torch.set_num_threads. The load average before and after the run is recorded,
since other work on the machine changes every number.

    python3 scripts/bench_e2e.py --provider cpu --json results/bench_e2e_cpu.json
    python3 scripts/bench_e2e.py --provider cuda --dtype fp16 --json $OUT/e2e.json
      (CUDA defaults: --lengths 512 2048 8192 --batches 1 32 128)

Prints a table and writes JSON (machine, versions, command, every timing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PEAK_RSS_SNIPPET = (
    "import resource, sys; from mamba_export.cli.main import main; code = main(sys.argv[1:]); "
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)"
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="preset:mamba-130m")
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    parser.add_argument("--backends", nargs="+", default=["custom", "standard"])
    parser.add_argument("--lengths", type=int, nargs="+", default=None,
                        help="prefill lengths (default 512 2048 on the CPU, 512 2048 8192 on CUDA)")
    parser.add_argument("--batches", type=int, nargs="+", default=None,
                        help="decode batch sizes (default 1 on the CPU, 1 32 128 on CUDA)")
    parser.add_argument("--first-call-lengths", type=int, nargs="+", default=[17, 33, 65, 129, 1025],
                        help="CUDA: new prompt lengths whose first call is timed against the second")
    parser.add_argument("--torch-max-length", type=int, default=2048,
                        help="longest prefill run through transformers (its scan without kernels is a "
                             "Python loop over the tokens)")
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for both engines (0: PyTorch's default, its physical cores)")
    parser.add_argument("--no-torch", action="store_true", help="skip the transformers baseline")
    parser.add_argument("--read-every", type=int, nargs="+", default=[], metavar="STEPS",
                        help="CUDA: also time decode with greedy tokens read back once every STEPS steps "
                             "(RuntimeOptions(read_tokens_every=STEPS); 1: after every step), a row each, beside "
                             "the default (every 16)")
    parser.add_argument("--fuse-delta-proj", action="store_true",
                        help="export with --fuse-delta-proj (the custom backend's scan projects dt itself)")
    parser.add_argument("--linear-op", action="store_true",
                        help="pass --linear-op to the export (the default of CUDA exports of the custom backend "
                             "already)")
    parser.add_argument("--cuda-option", action="append", default=[], metavar="NAME=VALUE",
                        help="CUDA provider option over the runtime's defaults (RuntimeOptions.cuda_options), "
                             "e.g. cudnn_conv_algo_search=EXHAUSTIVE; repeatable")
    parser.add_argument("--logits", choices=("last", "all"), default="last",
                        help="the export's --logits: last (all generate() reads; the serving docs export so) "
                             "or all (the export's own default, whose prefill computes and writes every "
                             "position's logits)")
    parser.add_argument("--workdir", default="build/bench_e2e")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cuda = args.provider == "cuda"
    if any("=" not in option for option in args.cuda_option):
        parser.error("--cuda-option takes NAME=VALUE")
    if args.read_every and not cuda:
        parser.error("--read-every times the CUDA device decoder: it needs --provider cuda")
    if any(steps < 1 for steps in args.read_every):
        parser.error(f"--read-every takes step counts >= 1, got {args.read_every}")
    if args.lengths is None:
        args.lengths = [512, 2048, 8192] if cuda else [512, 2048]
    if args.batches is None:
        args.batches = [1, 32, 128] if cuda else [1]
    return args


def timed_calls(fn, repeats: int) -> tuple[float, float]:
    """Seconds of the first call (session start, allocator growth, kernel compilation, CUDA-graph
    captures: what a user meets at a new shape) and the median of the next `repeats` calls."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def median_seconds(fn, repeats: int) -> float:
    return timed_calls(fn, repeats)[1]


def export_backend(args, backend: str) -> dict:
    suffix = ("-fused-dt" if args.fuse_delta_proj else "") + ("-linear" if args.linear_op else "") \
        + ("-all-logits" if args.logits == "all" else "")
    out = Path(args.workdir) / f"{backend}-{args.dtype}{suffix}"
    command = [sys.executable, "-c", PEAK_RSS_SNIPPET, "export", "--model", args.model, str(out),
               "--backend", backend, "--dtype", args.dtype, "--device", args.provider, "--logits", args.logits,
               "--no-check", "--force", "--quiet"] + (["--fuse-delta-proj"] if args.fuse_delta_proj else []) \
        + (["--linear-op"] if args.linear_op and backend == "custom" else [])
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"export of the {backend} backend failed:\n{result.stderr[-3000:]}")
    peak_kb = int(result.stdout.split("PEAK_RSS_KB")[-1].split()[0])
    return {"folder": str(out), "export_seconds": seconds, "export_peak_rss_mb": peak_kb / 1024}


def ort_runs(folder: str, args, cuda_graph: bool | None = None, read_tokens_every: int | None = None) -> dict:
    """Timings through ORTMambaForCausalLM; cuda_graph=False or read_tokens_every (CUDA only) times
    decode alone."""
    from mamba_export.options import RuntimeOptions
    from mamba_export.runtime.model import ORTMambaForCausalLM

    cuda_options = dict(option.split("=", 1) for option in args.cuda_option)
    options = RuntimeOptions(provider=args.provider, cuda_graph=cuda_graph, intra_op_threads=args.threads,
                             cuda_options=cuda_options, read_tokens_every=read_tokens_every)
    decode_only = cuda_graph is False or read_tokens_every is not None
    start = time.perf_counter()
    model = ORTMambaForCausalLM.from_pretrained(folder, options=options)
    load_seconds = time.perf_counter() - start  # on CUDA with the default warm-up of the prefill buckets
    rng = np.random.default_rng(0)
    vocab = int(model.info["vocab_size"])
    result = {"options": options.to_dict(), "load_seconds": load_seconds, "prefill_ms": {},
              "decode_tokens_per_s": {}, "first_decode_call_ms": {}}
    cuda = args.provider == "cuda"
    if cuda and not decode_only:
        model.generate(rng.integers(2, vocab, size=(1, 16)), max_new_tokens=2, eos_token_id=[])
        result["first_call_ms"] = first_calls(model, rng, vocab, args)
    if not decode_only:
        for length in args.lengths:
            ids = rng.integers(2, vocab, size=(1, length), dtype=np.int64)
            if cuda:
                def prefill(ids=ids):
                    return model.generate(ids, max_new_tokens=1, eos_token_id=[])
            else:
                def prefill(ids=ids):
                    return model(ids)
            result["prefill_ms"][length] = 1e3 * median_seconds(prefill, args.repeats)
    for batch in args.batches:
        prompt = rng.integers(2, vocab, size=(batch, 16), dtype=np.int64)

        def generate(n, prompt=prompt):
            return model.generate(prompt, max_new_tokens=n, eos_token_id=[])

        result["decode_tokens_per_s"][batch] = decode_rate(generate, batch, args, result["first_decode_call_ms"])
    return result


def first_calls(model, rng, vocab: int, args) -> dict:
    """generate(max_new_tokens=1) at prompt lengths the session has not seen: first and second call, ms."""
    timings = {}
    for length in args.first_call_lengths:
        ids = rng.integers(2, vocab, size=(1, length), dtype=np.int64)
        first, second = timed_calls(lambda ids=ids: model.generate(ids, max_new_tokens=1, eos_token_id=[]), 1)
        timings[length] = {"first": 1e3 * first, "second": 1e3 * second}
    return timings


def decode_rate(generate, batch: int, args, first_call_ms: dict) -> float:
    """Tokens per second of the decode loop alone, all rows counted. The first call at the batch
    size, generating args.decode_tokens tokens, and the later calls' median go into
    first_call_ms[batch]: on CUDA that first call captures the decode step's graphs."""
    n = args.decode_tokens
    first, full = timed_calls(lambda: generate(n), args.repeats)
    one = median_seconds(lambda: generate(1), args.repeats)
    first_call_ms[batch] = {"first": 1e3 * first, "later": 1e3 * full}
    return batch * (n - 1) / max(full - one, 1e-9)


def torch_runs(args) -> dict:
    import torch

    from mamba_export.export.loading import load

    device = "cuda" if args.provider == "cuda" else "cpu"
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    model = load(args.model).model.to(device=device, dtype=dtype).eval()
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    result = {"prefill_ms": {}, "decode_tokens_per_s": {}, "first_decode_call_ms": {}}
    with torch.inference_mode():
        for length in args.lengths:
            if length > args.torch_max_length:
                continue
            ids = torch.randint(2, vocab, (1, length), generator=generator).to(device)

            def prefill(ids=ids):
                model(input_ids=ids, logits_to_keep=1)
                sync()

            result["prefill_ms"][length] = 1e3 * median_seconds(prefill, args.repeats)
        for batch in args.batches:
            prompt = torch.randint(2, vocab, (batch, 16), generator=generator).to(device)

            def generate(n, prompt=prompt):
                model.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                               pad_token_id=0, use_cache=True)
                sync()

            result["decode_tokens_per_s"][batch] = decode_rate(generate, batch, args,
                                                               result["first_decode_call_ms"])
    return result


def resolve_threads(args) -> None:
    """Fix args.threads to a number, used by both engines."""
    import torch

    if args.threads <= 0:
        args.threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)


def load_average() -> list:
    return [round(value, 2) for value in os.getloadavg()]


def with_load(runs, *args, **kwargs) -> dict:
    """runs(...)'s timings with the 1-minute load average when they start and end: the
    benchmark's own threads count there too, so a value well above --threads means
    other work shared the machine."""
    start = os.getloadavg()[0]
    result = runs(*args, **kwargs)
    result["load_1min"] = {"start": round(start, 2), "end": round(os.getloadavg()[0], 2)}
    return result


def versions() -> dict:
    import onnxruntime
    import torch
    import transformers

    import mamba_export

    found = {"python": platform.python_version(), "torch": torch.__version__,
             "transformers": transformers.__version__, "onnxruntime": onnxruntime.__version__,
             "mamba_export": mamba_export.__version__}
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name(0)
    return found


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores, {cpu}"


def print_table(rows: dict, args) -> None:
    head = ["engine"] + [f"prefill L={n} ms" for n in args.lengths] + [f"decode b={b} tok/s" for b in args.batches]
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for name, row in rows.items():
        cells = [name] + [f"{row['prefill_ms'].get(n, float('nan')):.1f}" for n in args.lengths]
        cells += [f"{row['decode_tokens_per_s'].get(b, float('nan')):.1f}" for b in args.batches]
        print(" | ".join(cells))
    for name, row in rows.items():
        if "load_1min" in row:
            load = row["load_1min"]
            print(f"{name}: 1-minute load average {load['start']} at start, {load['end']} at end")
    for name, row in rows.items():
        if "load_seconds" in row:
            print(f"{name}: from_pretrained {row['load_seconds']:.2f} s")
        for length, calls in row.get("first_call_ms", {}).items():
            print(f"{name}: first call at new length {length}: {calls['first']:.1f} ms, "
                  f"second {calls['second']:.1f} ms (x{calls['first'] / calls['second']:.1f})")
        for batch, calls in row.get("first_decode_call_ms", {}).items():
            print(f"{name}: first generate() at batch {batch}, {args.decode_tokens} new tokens: "
                  f"{calls['first']:.1f} ms, later calls {calls['later']:.1f} ms "
                  f"(+{calls['first'] - calls['later']:.1f} ms)")
    baseline = rows.get("transformers")
    if baseline:
        for name, row in rows.items():
            if name == "transformers":
                continue
            ratios = [f"prefill L={n} x{baseline['prefill_ms'][n] / row['prefill_ms'][n]:.2f}"
                      for n in args.lengths if n in row["prefill_ms"] and n in baseline["prefill_ms"]]
            ratios += [f"decode b={b} x{row['decode_tokens_per_s'][b] / baseline['decode_tokens_per_s'][b]:.2f}"
                       for b in args.batches if b in row["decode_tokens_per_s"]]
            print(f"{name} against transformers: {', '.join(ratios)}")


def main() -> int:
    args = parse_args()
    load_before = load_average()
    exports = {backend: export_backend(args, backend) for backend in args.backends}
    if args.provider == "cpu":
        resolve_threads(args)
    rows = {}
    for backend, exported in exports.items():
        rows[f"ort-{backend}"] = with_load(ort_runs, exported["folder"], args)
        if args.provider == "cuda":
            try:
                rows[f"ort-{backend}-nograph"] = with_load(ort_runs, exported["folder"], args, cuda_graph=False)
            except Exception as error:  # recorded, not fatal: the other rows still stand
                print(f"ort-{backend}-nograph failed: {error}", file=sys.stderr)
                rows[f"ort-{backend}-nograph"] = {"prefill_ms": {}, "decode_tokens_per_s": {},
                                                  "error": str(error)[:2000]}
            for steps in args.read_every:
                rows[f"ort-{backend}-read-every-{steps}"] = with_load(ort_runs, exported["folder"], args,
                                                                      read_tokens_every=steps)
    if not args.no_torch:
        rows["transformers"] = with_load(torch_runs, args)
    print_table(rows, args)
    for backend, exported in exports.items():
        print(f"export {backend}: {exported['export_seconds']:.1f} s, peak RSS {exported['export_peak_rss_mb']:.0f} MB")
    load_after = load_average()
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    report = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "versions": versions(),
              "command": " ".join([Path(sys.executable).name] + sys.argv), "args": vars(args),
              "load_average": {"before": load_before, "after": load_after},
              "exports": exports, "results": rows}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
