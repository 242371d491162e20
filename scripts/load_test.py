#!/usr/bin/env python3
"""Load test of continuous batching: many concurrent clients, then the same requests one at a time.

Two modes drive the same scheduler (mamba_export/serve/scheduler.py):

* http: starts the Ray Serve application on loopback (or uses --url) and sends streamed
  POST /v1/completions requests from --clients concurrent clients;
* inprocess: submits to a Scheduler in this process, without Ray or HTTP (for a GPU
  machine without Ray), and can also time generate() on one batch of --clients prompts
  (--compare-generate).

Phases: a warm-up request; "serial": each distinct prompt once, one request at a time,
whose tokens are the reference; "concurrent": --requests requests over the same prompts
from --clients clients, each answer compared with its prompt's reference (a difference
counts as crossed). The two alternate over --rounds rounds, each taking its share, so a
shared machine's background load weighs on both alike. Both are bounded (--requests,
--time-limit per run) and stop by themselves. Reports throughput (generated tokens / phase wall time), time to first
token and per-token latency (p50/p99), errors, crossed answers and the speedup; prints
a table and writes JSON (default results/load_test_<mode>_<provider>.json) with the
machine, versions, command and load average.

Usage: python scripts/load_test.py FOLDER [--mode http|inprocess] [--clients 32] [--requests 512]
       [--max-tokens 32] [--prompt-tokens 16] [--prompts 16] [--provider cpu|cuda] [--compare-generate]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="an exported causal LM folder")
    parser.add_argument("--mode", choices=("http", "inprocess"), default="http")
    parser.add_argument("--url", default=None, help="http mode: a running server (default: start one here)")
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=512, help="requests of the concurrent phase")
    parser.add_argument("--prompts", type=int, default=32, help="distinct prompts (the serial phase runs each once)")
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=None, help="scheduler rows (default: --clients)")
    parser.add_argument("--replicas", type=int, default=1, help="http mode, server started here")
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds per phase before it stops")
    parser.add_argument("--compare-generate", action="store_true",
                        help="also time generate() on one batch of --clients prompts")
    parser.add_argument("--rounds", type=int, default=2,
                        help="the serial and concurrent phases alternate this many times (each a share)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


class Record:
    """One request: when it was sent, when each token arrived, its tokens, and an error if any."""

    def __init__(self, prompt_index: int):
        self.prompt_index = prompt_index
        self.sent = time.perf_counter()
        self.times: list = []
        self.tokens: list = []
        self.error = None


def percentile(values, q):
    return float(np.percentile(values, q)) * 1000 if len(values) else None


def summarize(records, wall: float, reference=None) -> dict:
    done = [r for r in records if r.error is None]
    ttft = [r.times[0] - r.sent for r in done if r.times]
    gaps = [b - a for r in done for a, b in zip(r.times, r.times[1:], strict=False)]
    tokens = sum(len(r.tokens) for r in done)
    differing = [r for r in done if reference is not None and r.tokens != reference[r.prompt_index]]
    return {"requests": len(records), "completed": len(done), "errors": len(records) - len(done),
            "crossed": len(differing), "first_differences": first_differences(differing, reference),
            "tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall if wall else 0.0,
            "ttft_ms_p50": percentile(ttft, 50), "ttft_ms_p99": percentile(ttft, 99),
            "token_ms_p50": percentile(gaps, 50), "token_ms_p99": percentile(gaps, 99),
            "first_errors": sorted({str(r.error) for r in records if r.error is not None})[:5]}


def first_differences(differing, reference) -> list:
    """Where each differing answer leaves its prompt's reference: [prompt, first differing
    position, tokens, reference tokens], at most 20. A row that took another row's state
    differs from its first tokens on; a late difference after a shared prefix is the kind
    that rounding which depends on the batch (a near tie between two tokens) can cause."""
    out = []
    for r in differing[:20]:
        want = reference[r.prompt_index]
        position = next((i for i, (a, b) in enumerate(zip(r.tokens, want, strict=False)) if a != b),
                        min(len(r.tokens), len(want)))
        out.append([r.prompt_index, position, len(r.tokens), len(want)])
    return out


def explain_differences(model, prompts, differing, reference) -> list:
    """For each differing answer (at most 20), the solo logits where it leaves its reference.

    The prompt and the reference tokens before that position are read alone (batch 1); the
    entry gives the reference's token and the batch's, the batch token's rank among the solo
    logits and the margin between the two, absolute and relative to max|logits|. A crossed row
    would pick a token of another prompt's context, anywhere in the ranking; rounding that
    depends on the batch can only swap near ties, so a rank of 1 with a relative margin near
    the dtype's rounding names that cause."""
    out = []
    for r in differing[:20]:
        want = reference[r.prompt_index]
        position = next((i for i, (a, b) in enumerate(zip(r.tokens, want, strict=False)) if a != b), None)
        if position is None:  # one answer is a prefix of the other (an EOS or a lost token)
            out.append({"prompt": r.prompt_index, "position": None})
            continue
        ids = np.asarray([list(prompts[r.prompt_index]) + want[:position]], dtype=np.int64)
        logits = np.asarray(model(ids).logits[0, -1], dtype=np.float64)
        got, expected = r.tokens[position], want[position]
        scale = float(np.abs(logits).max())
        out.append({"prompt": r.prompt_index, "position": position, "reference_token": expected,
                    "batch_token": got, "solo_top": int(np.argmax(logits)),
                    "batch_token_rank": int((logits > logits[got]).sum()),
                    "margin": float(logits[expected] - logits[got]),
                    "relative_margin": float((logits[expected] - logits[got]) / scale) if scale else None})
    return out


def serve_options(args):
    """The server's options for this load: a batch of --max-batch (default --clients) rows."""
    from mamba_export.serve.options import ServeOptions

    return ServeOptions(provider=args.provider, max_batch=args.max_batch or args.clients, max_waiting=args.clients + 1)


# -- in-process: the scheduler without Ray ----------------------------------------------------------


class InProcess:
    def __init__(self, args):
        from mamba_export.runtime.generation import GenerationSettings
        from mamba_export.serve.loading import load_model
        from mamba_export.serve.scheduler import Scheduler

        options = serve_options(args)
        self.model, _ = load_model(args.folder, options)  # as a replica loads it
        self.settings = GenerationSettings.create(max_new_tokens=args.max_tokens,
                                                  eos_token_id=self.model.folder.special_token("eos_token_id"))
        self.scheduler = Scheduler(self.model, options.max_batch, options.max_waiting, options.prefill_chunk)
        self.scheduler.start()

    def run(self, prompts, order, clients: int, time_limit: float):
        slots = threading.Semaphore(clients)
        records, deadline = [], time.perf_counter() + time_limit

        def sink_for(record):
            def sink(event):
                if event.finish_reason is None:
                    record.times.append(time.perf_counter())
                    record.tokens.append(event.token)
                else:
                    if event.finish_reason not in ("stop", "length"):
                        record.error = event.message or event.finish_reason
                    slots.release()
            return sink

        start = time.perf_counter()
        for index in order:
            if not slots.acquire(timeout=max(deadline - time.perf_counter(), 0)):
                break
            record = Record(index)
            records.append(record)
            try:
                self.scheduler.submit(prompts[index], self.settings, sink_for(record))
            except Exception as error:  # counted, never hidden
                record.error = error
                slots.release()
        for _ in range(clients):  # every request in flight has ended
            slots.acquire(timeout=max(deadline - time.perf_counter(), 1.0))
        return records, time.perf_counter() - start

    def close(self):
        self.scheduler.stop()


# -- http: the Ray Serve application ----------------------------------------------------------------


class OverHttp:
    def __init__(self, args):
        self.args = args
        self.started_here = args.url is None
        if self.started_here:
            from mamba_export.serve.app import start

            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            start(args.folder, serve_options(args), args.replicas, "127.0.0.1", port)
            self.url = f"http://127.0.0.1:{port}"
        else:
            self.url = args.url.rstrip("/")

    async def _one(self, client, prompt, record):
        import httpx

        body = {"prompt": prompt, "max_tokens": self.args.max_tokens, "temperature": 0, "stream": True}
        try:
            async with client.stream("POST", f"{self.url}/v1/completions", json=body) as response:
                if response.status_code != 200:
                    record.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                    return
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[len("data: "):])
                    if "error" in chunk:
                        record.error = chunk["error"]["message"]
                        return
                    for token in chunk["choices"][0]["token_ids"]:
                        record.times.append(time.perf_counter())
                        record.tokens.append(token)
        except (httpx.HTTPError, ValueError) as error:
            record.error = f"{type(error).__name__}: {error}"

    async def _run(self, prompts, order, clients, time_limit):
        import httpx

        queue = list(order)
        records, deadline = [], time.perf_counter() + time_limit
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(timeout=time_limit, limits=limits) as client:
            async def worker():
                while queue and time.perf_counter() < deadline:
                    index = queue.pop(0)
                    record = Record(index)
                    records.append(record)
                    await self._one(client, prompts[index], record)

            start = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(clients))), time_limit + 60)
        return records, time.perf_counter() - start

    def run(self, prompts, order, clients, time_limit):
        return asyncio.run(self._run(prompts, order, clients, time_limit))

    def close(self):
        if self.started_here:
            from ray import serve

            serve.shutdown()


def solo_model(args, driver):
    """The model that reads differing answers alone: the in-process one, or a new one here."""
    if getattr(driver, "model", None) is not None:
        return driver.model
    from mamba_export.runtime.model import ORTMambaForCausalLM

    return ORTMambaForCausalLM.from_pretrained(args.folder, provider=args.provider)


def generate_batch(args, prompts) -> dict:
    """generate() on one batch of --clients prompts (equal lengths, no padding), greedy."""
    from mamba_export.runtime.model import ORTMambaForCausalLM

    model = ORTMambaForCausalLM.from_pretrained(args.folder, provider=args.provider)
    ids = np.asarray([prompts[i % len(prompts)] for i in range(args.clients)], dtype=np.int64)
    model.generate(ids[:, :4], max_new_tokens=2, eos_token_id=[])  # warm-up (CUDA graphs, buffers)
    start = time.perf_counter()
    out = model.generate(ids, max_new_tokens=args.max_tokens, eos_token_id=[])
    wall = time.perf_counter() - start
    tokens = (out.shape[1] - ids.shape[1]) * ids.shape[0]
    return {"batch": args.clients, "tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall}


def environment(args) -> dict:
    import onnxruntime

    versions = {"python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                "numpy": np.__version__}
    try:
        import ray

        versions["ray"] = ray.__version__
    except ImportError:
        versions["ray"] = None
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    info = json.loads((Path(args.folder) / "export_info.json").read_text())
    return {"machine": {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()},
            "versions": versions, "command": " ".join([Path(sys.executable).name] + sys.argv),
            "model": {key: info.get(key) for key in ("source", "dtype", "backend", "logits", "num_layers")},
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def print_table(result: dict) -> None:
    rows = [("serial (1 at a time)", result["serial"]), (f"concurrent ({result['clients']} clients)",
                                                         result["concurrent"])]
    print(f"{'phase':28} {'requests':>8} {'errors':>6} {'crossed':>7} {'tokens/s':>9} {'TTFT p50':>9} "
          f"{'TTFT p99':>9} {'tok p50':>8} {'tok p99':>8}  (ms)")
    for name, s in rows:
        def ms(value):
            return f"{value:9.1f}" if value is not None else f"{'-':>9}"
        print(f"{name:28} {s['requests']:8d} {s['errors']:6d} {s['crossed']:7d} {s['tokens_per_s']:9.1f} "
              f"{ms(s['ttft_ms_p50'])} {ms(s['ttft_ms_p99'])} {ms(s['token_ms_p50'])[1:]} {ms(s['token_ms_p99'])[1:]}")
    print(f"speedup (concurrent / serial tokens/s): {result['speedup']:.2f}x")
    if result.get("generate_batch"):
        g = result["generate_batch"]
        print(f"generate() at batch {g['batch']}: {g['tokens_per_s']:.1f} tokens/s "
              f"(scheduler / generate: {result['concurrent']['tokens_per_s'] / g['tokens_per_s']:.2f})")
    print(f"load average before/after: {result['load_average']['before']} / {result['load_average']['after']}")


def main(argv=None) -> int:
    args = parse_args(argv)
    info = json.loads((Path(args.folder) / "export_info.json").read_text())
    rng = np.random.default_rng(args.seed)
    prompts = [rng.integers(1, int(info["vocab_size"]), args.prompt_tokens).tolist() for _ in range(args.prompts)]
    load_before = [round(x, 2) for x in os.getloadavg()]
    driver = InProcess(args) if args.mode == "inprocess" else OverHttp(args)
    serial, concurrent, serial_wall, concurrent_wall = [], [], 0.0, 0.0
    try:
        driver.run(prompts, [0], 1, args.time_limit)  # warm-up
        order = [i % len(prompts) for i in range(args.requests)]
        for r in range(args.rounds):  # alternate, so both phases meet the same background load
            records, wall = driver.run(prompts, range(r, len(prompts), args.rounds), 1, args.time_limit)
            serial, serial_wall = serial + records, serial_wall + wall
            records, wall = driver.run(prompts, order[r::args.rounds], args.clients, args.time_limit)
            concurrent, concurrent_wall = concurrent + records, concurrent_wall + wall
    finally:
        driver.close()
    reference = {r.prompt_index: r.tokens for r in serial if r.error is None}
    result = {"mode": args.mode, "provider": args.provider, "clients": args.clients, "rounds": args.rounds,
              "max_batch": args.max_batch or args.clients, "replicas": args.replicas if args.mode == "http" else None,
              "prompt_tokens": args.prompt_tokens, "max_tokens": args.max_tokens,
              "serial": summarize(serial, serial_wall), "concurrent": summarize(concurrent, concurrent_wall, reference)}
    result["speedup"] = result["concurrent"]["tokens_per_s"] / max(result["serial"]["tokens_per_s"], 1e-9)
    differing = [r for r in concurrent if r.error is None and r.tokens != reference.get(r.prompt_index)]
    if differing:
        result["concurrent"]["explained"] = explain_differences(solo_model(args, driver), prompts, differing,
                                                                reference)
    if args.compare_generate:
        result["generate_batch"] = generate_batch(args, prompts)
    result["load_average"] = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
    result.update(environment(args))
    print_table(result)
    path = Path(args.json) if args.json else REPO / "results" / f"load_test_{args.mode}_{args.provider}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    failed = result["concurrent"]["errors"] + result["concurrent"]["crossed"] + result["serial"]["errors"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
