#!/usr/bin/env python3
"""Where one generated token's time goes on CUDA, through the public generate() and its parts.

generate() on CUDA spends each token in four places: the decode step (a CUDA graph replay by
default), the token head (argmax next to the logits, its own session), the copy of the chosen
ids to the host, and Python. This script times each part alone, at each batch size, against a
whole generate() call divided by its tokens, so the gap between the graph and the user's
figure is measured rather than guessed; and generate()'s own loop with its decoder's calls
timed where they happen (the ``loop_*`` columns: step(), next_tokens() and the Python
between them, prefill left out), since parts timed alone can run faster than in the loop.
With ``--kernels`` it also runs one decode step and one prefill between
cudaProfilerStart/Stop (for ``ncu --profile-from-start off``), so the GPU's own list of
kernels can be taken of exactly those calls. ncu times each kernel alone (serialised, caches
flushed, base clocks); ``--timeline`` instead traces graph replays as they run (CUPTI, through
torch's profiler) and splits each step's span into kernel time and the gaps between kernels.

    python3 scripts/profile_decode.py /tmp/e2e/fp16 --batches 1 32 --json $OUT/profile_decode.json
    ncu --profile-from-start off --metrics gpu__time_duration.sum --csv \\
        python3 scripts/profile_decode.py /tmp/e2e/fp16 --kernels --batches 1 > kernels.csv
    python3 scripts/profile_decode.py /tmp/e2e/fp16 --timeline --batches 1 32 --json $OUT/timeline.json
    python3 scripts/profile_decode.py $OUT/timeline.json    # print a saved one again
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

# Tokens of the generate() call that captures a batch size's decode graphs before timing: one
# graph per binding, and a binding per row of the token ring (16 by default).
CAPTURE_TOKENS = 24


def _timed(fn, repeats: int) -> float:
    """Median wall milliseconds of ``fn()`` over ``repeats`` calls (each call is synchronous)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def parts(model, batch: int, tokens: int, repeats: int, rng) -> dict:
    vocab = int(model.info["vocab_size"])
    ids = rng.integers(2, vocab, size=(batch, 16), dtype=np.int64)
    model.generate(ids, max_new_tokens=CAPTURE_TOKENS, eos_token_id=[])  # captures this batch size's graphs
    start = time.perf_counter()
    model.generate(ids, max_new_tokens=tokens, eos_token_id=[])
    per_token = (time.perf_counter() - start) * 1e3 / tokens
    buffers = model.decode_cache[batch]
    session = model.session
    binding = buffers.decode_bindings[0]
    graph = buffers.graph_options[0] if buffers.captured[0] else None
    head = model.token_head
    from mamba_export.runtime.io_binding import Device, token_buffer
    from mamba_export.runtime.session import cuda_device_id

    # An export that chooses its tokens in the graph has no ids buffer of its own, only the ring that
    # generate() reads once every few steps (runtime/token_ring.py): the token head is timed on a fresh one.
    device = Device("cuda", cuda_device_id(model.options))
    ids_buffer = buffers.ids[0] if buffers.ids else token_buffer(device, batch)
    read = buffers.ring.value if buffers.ring is not None else ids_buffer
    if buffers.head_binding is None:
        buffers.head_binding = head.greedy_binding(buffers.logits, ids_buffer)
    row = {
        "batch": batch,
        "generate_ms_per_token": per_token,
        "decode_step_ms": _timed(lambda: session.run_with_iobinding(binding, graph), repeats),
        "token_head_ms": _timed(lambda: head.run(buffers.head_binding), repeats),
        "ids_to_host_ms": _timed(lambda: read.numpy(), repeats),
        "ids_to_device_ms": _timed(lambda: ids_buffer.update_inplace(np.zeros((batch, 1), np.int64)), repeats),
        "graph": graph is not None,
        # The export's next_tokens: the argmax is in the decode step, and generate() runs no token head.
        "in_graph_tokens": buffers.in_graph_tokens,
    }
    head_part = 0.0 if buffers.in_graph_tokens else row["token_head_ms"]
    reads_a_step = 1.0 / model.options.token_read_interval if buffers.in_graph_tokens else 1.0
    row["parts_ms"] = row["decode_step_ms"] + head_part + reads_a_step * row["ids_to_host_ms"]
    row["other_ms"] = per_token - row["parts_ms"]
    return row


def loop(model, batch: int, tokens: int, rng) -> dict:
    """generate()'s own loop with its decoder's calls timed where they happen: ms per token in
    step() (the decode step), next_tokens() (token head and ids to the host) and the rest
    (generate()'s Python between them); the prefill is timed apart and left out. Greedy decoding
    on an export that chooses its own tokens calls advance() (the decode step) and tokens() (a
    group of steps' ids to the host) instead."""
    from mamba_export.runtime.generation import GenerationSettings, generate, make_decoder

    vocab = int(model.info["vocab_size"])
    ids = rng.integers(2, vocab, size=(batch, 16), dtype=np.int64)
    model.generate(ids, max_new_tokens=CAPTURE_TOKENS, eos_token_id=[])  # this batch size's graphs
    decoder = make_decoder(model)
    spent = {"prefill": 0.0, "next_tokens": 0.0, "step": 0.0, "advance": 0.0, "tokens": 0.0}

    def timed(name):
        method = getattr(decoder, name)

        def call(*args):
            start = time.perf_counter()
            result = method(*args)
            spent[name] += time.perf_counter() - start
            return result
        setattr(decoder, name, call)

    for name in spent:
        if hasattr(decoder, name):
            timed(name)
    settings = GenerationSettings.create(max_new_tokens=tokens, eos_token_id=[])
    start = time.perf_counter()
    generate(decoder, ids, np.ones_like(ids), settings)
    total = time.perf_counter() - start
    per_token = {name: 1e3 * value / tokens for name, value in spent.items() if name != "prefill"}
    per_token["python"] = 1e3 * (total - sum(spent.values())) / tokens
    return {f"loop_{name}_ms": value for name, value in per_token.items()}


def kernels(model, batch: int, length: int) -> None:
    """One decode step without a graph and one prefill of ``length`` tokens inside the profiler range."""
    import torch

    from mamba_export.runtime.session import NO_GRAPH, run_options

    vocab = int(model.info["vocab_size"])
    ids = np.random.default_rng(0).integers(2, vocab, size=(batch, 16), dtype=np.int64)
    model.generate(ids, max_new_tokens=CAPTURE_TOKENS, eos_token_id=[])
    buffers = model.decode_cache[batch]
    no_graph = run_options(NO_GRAPH)
    model.session.run_with_iobinding(buffers.decode_bindings[0], no_graph)
    prompt = np.random.default_rng(1).integers(2, vocab, size=(1, length), dtype=np.int64)
    model.generate(prompt, max_new_tokens=1, eos_token_id=[])  # this length's set-up outside the range
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    model.session.run_with_iobinding(buffers.decode_bindings[0], no_graph)
    if not buffers.in_graph_tokens:
        model.token_head.run(buffers.head_binding or model.token_head.greedy_binding(buffers.logits, buffers.ids[0]))
    model.generate(prompt, max_new_tokens=1, eos_token_id=[])
    torch.cuda.synchronize()
    torch.cuda.profiler.stop()


def _kernel_name(name: str) -> str:
    """A kernel's name without its template arguments and parameters, for grouping."""
    name = name.replace("(anonymous namespace)::", "").split("(")[0]
    depth, kept = 0, []
    for char in name:
        depth += char == "<"
        if depth == 0:
            kept.append(char)
        depth -= char == ">"
    return "".join(kept).replace("void ", "").strip()[-60:]


def _union(events: list) -> float:
    """Microseconds covered by at least one of the kernels."""
    total, end = 0.0, float("-inf")
    for e in events:  # sorted by start
        start, stop = e["ts"], e["ts"] + e["dur"]
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def timeline(model, batch: int, replays: int, workdir: Path) -> dict:
    """Trace ``replays`` decode-step graph replays at ``batch`` (CUPTI, through torch's profiler) and
    summarize them (summarize_steps)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    vocab = int(model.info["vocab_size"])
    ids = np.random.default_rng(0).integers(2, vocab, size=(batch, 16), dtype=np.int64)
    model.generate(ids, max_new_tokens=CAPTURE_TOKENS, eos_token_id=[])
    buffers = model.decode_cache[batch]
    graph = buffers.graph_options[0] if buffers.captured[0] else None
    binding = buffers.decode_bindings[0]
    for _ in range(20):
        model.session.run_with_iobinding(binding, graph)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(replays):
            model.session.run_with_iobinding(binding, graph)  # synchronous: steps do not overlap
        torch.cuda.synchronize()
    trace = workdir / f"timeline_b{batch}.json"
    prof.export_chrome_trace(str(trace))
    events = [e for e in json.loads(trace.read_text())["traceEvents"] if e.get("cat") == "kernel" and "dur" in e]
    return dict(batch=batch, **summarize_steps(events))


def summarize_steps(events: list) -> dict:
    """Kernel events (``name``, ``ts`` and ``dur`` in microseconds) of back-to-back synchronous steps,
    split into steps where the gap between kernels is far larger than any inside a step; steps with
    other than the usual kernel count (partial ones at either end) are left out. Per step (medians):
    the span from the first kernel's start to the last one's end, the time some kernel runs, the
    kernels' durations summed, and the gaps; per kernel name, calls and microseconds per step; the
    first step's kernels in order, each with the time from the previous kernel's end to its own end
    (``adds_us``: what it adds to the step)."""
    if not events:
        raise ValueError("no kernel events: was the GPU traced?")
    events = sorted(events, key=lambda e: e["ts"])
    gaps = [b["ts"] - (a["ts"] + a["dur"]) for a, b in zip(events, events[1:], strict=False)]
    cut = max(20.0, 4 * float(np.median(gaps))) if gaps else 0.0
    steps, current = [], [events[0]]
    for gap, event in zip(gaps, events[1:], strict=False):
        if gap > cut:
            steps.append(current)
            current = []
        current.append(event)
    steps.append(current)
    sizes = [len(step) for step in steps]
    size = max(set(sizes), key=sizes.count)
    steps = [step for step in steps if len(step) == size]
    spans = [step[-1]["ts"] + step[-1]["dur"] - step[0]["ts"] for step in steps]
    # Kernels launched as programmatic dependents start before the previous one ends (and wait inside):
    # the time some kernel runs is the union of their intervals, not the sum.
    busy = [_union(step) for step in steps]
    summed = [sum(e["dur"] for e in step) for step in steps]
    per_name: dict = defaultdict(lambda: [0, 0.0])
    for step in steps:
        for e in step:
            entry = per_name[_kernel_name(e["name"])]
            entry[0] += 1
            entry[1] += e["dur"]
    # What each kernel of the first step adds: its end minus the latest end before it.
    first_step, latest = [], steps[0][0]["ts"]
    for e in steps[0]:
        end = e["ts"] + e["dur"]
        first_step.append({"kernel": _kernel_name(e["name"]), "us": e["dur"], "adds_us": end - latest})
        latest = max(latest, end)
    return {
        "steps": len(steps), "kernels_per_step": size,
        "span_us": float(np.median(spans)), "kernel_us": float(np.median(busy)),
        "summed_kernel_us": float(np.median(summed)),
        "gap_us": float(np.median([s - b for s, b in zip(spans, busy, strict=True)])),
        "by_kernel": sorted(({"kernel": k, "per_step": v[0] / len(steps), "us_per_step": v[1] / len(steps)}
                             for k, v in per_name.items()), key=lambda r: -r["us_per_step"]),
        "first_step": first_step,
    }


def per_layer(first_step: list, layers: int) -> dict:
    """The step's kernels by their place in a layer: the first run of ``layers`` repeats of the same
    kernel names, and per place the mean microseconds it adds to the step (``adds_us``; traces
    written before that field: the gap before the kernel plus its duration); the rest is outside
    the layers (embedding, final norm, head, argmax)."""
    names = [row["kernel"] for row in first_step]
    adds = [row["adds_us"] if "adds_us" in row else row["gap_before_us"] + row["us"] for row in first_step]
    for per in range(len(names) // layers if layers > 0 else 0, 0, -1):  # the most kernels a layer first
        for offset in range(len(names) - per * layers + 1):
            block = names[offset:offset + per]
            if all(names[offset + i * per:offset + (i + 1) * per] == block for i in range(layers)):
                places = [{"kernel": block[j],
                           "adds_us": sum(adds[offset + i * per + j] for i in range(layers)) / layers}
                          for j in range(per)]
                outside = sum(adds) - sum(adds[offset:offset + per * layers])
                return {"kernels_per_layer": per, "places": places, "outside_layers_us": outside}
    raise ValueError(f"no run of {layers} layers with the same kernels in this step ({len(names)} kernels)")


def _print_timeline(runs: list, layers: int) -> None:
    print("batch | kernels a step | step span us | some kernel running us | kernel durations summed us | gaps us")
    for r in runs:
        print(f"{r['batch']} | {r['kernels_per_step']} | {r['span_us']:.1f} | {r['kernel_us']:.1f} | "
              f"{r['summed_kernel_us']:.1f} | {r['gap_us']:.1f}")
        for row in r["by_kernel"][:12]:
            print(f"    {row['kernel']}: {row['per_step']:.0f} a step, {row['us_per_step']:.1f} us")
        layer = per_layer(r["first_step"], layers)
        print("    a layer, us added to the step by each kernel in order: "
              + ", ".join(f"{p['kernel'].split('::')[-1]} {p['adds_us']:.2f}" for p in layer["places"])
              + f"; outside the layers {layer['outside_layers_us']:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--kernels", action="store_true", help="profile one step and one prefill for ncu")
    parser.add_argument("--length", type=int, default=2048, help="the prefill length of --kernels")
    parser.add_argument("--timeline", action="store_true", help="trace graph replays: kernel time and gaps")
    parser.add_argument("--layers", type=int, help="with folder a --timeline JSON: print it, for this many layers")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/profile_decode"), help="--timeline's traces")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.folder.suffix == ".json":  # a saved --timeline run
        saved = json.loads(args.folder.read_text())
        layers = args.layers or saved.get("num_layers")
        if not layers:
            parser.error(f"{args.folder} does not say how many layers the model has: pass --layers")
        _print_timeline(saved["runs"], layers)
        return 0

    import onnxruntime as ort

    from mamba_export.runtime.model import ORTMambaForCausalLM

    model = ORTMambaForCausalLM.from_pretrained(args.folder, provider="cuda")
    if args.kernels:
        kernels(model, args.batches[0], args.length)
        return 0
    if args.timeline:
        args.workdir.mkdir(parents=True, exist_ok=True)
        runs = [timeline(model, batch, 50, args.workdir) for batch in args.batches]
        layers = int(model.info["num_layers"])
        _print_timeline(runs, layers)
        if args.json:
            args.json.write_text(json.dumps({"folder": str(args.folder), "onnxruntime": ort.__version__,
                                             "num_layers": layers, "runs": runs}, indent=1) + "\n")
        return 0
    rng = np.random.default_rng(0)
    rows = [dict(parts(model, batch, args.tokens, args.repeats, rng), **loop(model, batch, args.tokens, rng))
            for batch in args.batches]
    print("batch | generate ms/token | decode step | token head | ids to host | ids to device | other | graph"
          " | in the loop: step() or advance() | next_tokens() or tokens() | python")
    for r in rows:
        print(f"{r['batch']} | {r['generate_ms_per_token']:.3f} | {r['decode_step_ms']:.3f} | "
              f"{r['token_head_ms']:.3f} | {r['ids_to_host_ms']:.3f} | {r['ids_to_device_ms']:.3f} | "
              f"{r['other_ms']:.3f} | {r['graph']} | {r['loop_step_ms'] + r['loop_advance_ms']:.3f} | "
              f"{r['loop_next_tokens_ms'] + r['loop_tokens_ms']:.3f} | {r['loop_python_ms']:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"folder": str(args.folder), "onnxruntime": ort.__version__,
                                         "info": {k: model.info.get(k) for k in ("dtype", "num_layers")},
                                         "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
