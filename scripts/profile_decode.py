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
kernels can be taken of exactly those calls.

    python3 scripts/profile_decode.py /tmp/e2e/fp16 --batches 1 32 --json $OUT/profile_decode.json
    ncu --profile-from-start off --metrics gpu__time_duration.sum --csv \\
        python3 scripts/profile_decode.py /tmp/e2e/fp16 --kernels --batches 1 > kernels.csv
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


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
    model.generate(ids, max_new_tokens=4, eos_token_id=[])  # captures this batch size's graphs
    start = time.perf_counter()
    model.generate(ids, max_new_tokens=tokens, eos_token_id=[])
    per_token = (time.perf_counter() - start) * 1e3 / tokens
    buffers = model.decode_cache[batch]
    session = model.session
    binding = buffers.decode_bindings[0]
    graph = buffers.graph_options[0] if buffers.captured[0] else None
    head = model.token_head
    ids_buffer = buffers.ids[0]
    if buffers.head_binding is None:
        buffers.head_binding = head.greedy_binding(buffers.logits, ids_buffer)
    row = {
        "batch": batch,
        "generate_ms_per_token": per_token,
        "decode_step_ms": _timed(lambda: session.run_with_iobinding(binding, graph), repeats),
        "token_head_ms": _timed(lambda: head.run(buffers.head_binding), repeats),
        "ids_to_host_ms": _timed(lambda: ids_buffer.numpy(), repeats),
        "ids_to_device_ms": _timed(lambda: ids_buffer.update_inplace(np.zeros((batch, 1), np.int64)), repeats),
        "graph": graph is not None,
        # The export's next_tokens: the argmax is in the decode step, and generate() runs no token head.
        "in_graph_tokens": buffers.in_graph_tokens,
    }
    head_part = 0.0 if buffers.in_graph_tokens else row["token_head_ms"]
    row["parts_ms"] = row["decode_step_ms"] + head_part + row["ids_to_host_ms"]
    row["other_ms"] = per_token - row["parts_ms"]
    return row


def loop(model, batch: int, tokens: int, rng) -> dict:
    """generate()'s own loop with its decoder's calls timed where they happen: ms per token in
    step() (the decode step), next_tokens() (token head and ids to the host) and the rest
    (generate()'s Python between them); the prefill is timed apart and left out."""
    from mamba_export.runtime.generation import GenerationSettings, generate, make_decoder

    vocab = int(model.info["vocab_size"])
    ids = rng.integers(2, vocab, size=(batch, 16), dtype=np.int64)
    model.generate(ids, max_new_tokens=4, eos_token_id=[])  # this batch size's graphs
    decoder = make_decoder(model)
    spent = {"prefill": 0.0, "next_tokens": 0.0, "step": 0.0}

    def timed(name):
        method = getattr(decoder, name)

        def call(*args):
            start = time.perf_counter()
            result = method(*args)
            spent[name] += time.perf_counter() - start
            return result
        setattr(decoder, name, call)

    for name in spent:
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
    model.generate(ids, max_new_tokens=4, eos_token_id=[])
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--kernels", action="store_true", help="profile one step and one prefill for ncu")
    parser.add_argument("--length", type=int, default=2048, help="the prefill length of --kernels")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import onnxruntime as ort

    from mamba_export.runtime.model import ORTMambaForCausalLM

    model = ORTMambaForCausalLM.from_pretrained(args.folder, provider="cuda")
    if args.kernels:
        kernels(model, args.batches[0], args.length)
        return 0
    rng = np.random.default_rng(0)
    rows = [dict(parts(model, batch, args.tokens, args.repeats, rng), **loop(model, batch, args.tokens, rng))
            for batch in args.batches]
    print("batch | generate ms/token | decode step | token head | ids to host | ids to device | other | graph"
          " | in the loop: step() | next_tokens() | python")
    for r in rows:
        print(f"{r['batch']} | {r['generate_ms_per_token']:.3f} | {r['decode_step_ms']:.3f} | "
              f"{r['token_head_ms']:.3f} | {r['ids_to_host_ms']:.3f} | {r['ids_to_device_ms']:.3f} | "
              f"{r['other_ms']:.3f} | {r['graph']} | {r['loop_step_ms']:.3f} | {r['loop_next_tokens_ms']:.3f} | "
              f"{r['loop_python_ms']:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"folder": str(args.folder), "onnxruntime": ort.__version__,
                                         "info": {k: model.info.get(k) for k in ("dtype", "num_layers")},
                                         "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
