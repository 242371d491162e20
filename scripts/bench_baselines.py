"""Speed baselines on CUDA: mamba-ssm's own generate() and transformers' Mamba on mamba-ssm's kernels.

These are the numbers the exported graphs are compared against on a GPU; neither
package is a dependency of this project. scripts/stage_baselines.sh builds their
wheels (mamba-ssm 2.3.2.post1, causal-conv1d 1.7.0, sm_90) and scripts/gpu_round.sh
(ROUND_STEPS=baselines) installs them into a folder on PYTHONPATH and runs this script.

For each model configuration (random weights, float16, CUDA) and each row:
  * ``mamba_ssm cg=False`` and ``mamba_ssm cg=True``: ``MambaLMHeadModel.generate(ids,
    max_length=..., cg=...)`` (greedy, no end token); cg=True replays each decode step
    as a captured CUDA graph, captured on the first call at a batch size;
  * ``transformers``: ``MambaForCausalLM.generate(ids, max_new_tokens=...)`` (greedy,
    every token generated), whose mixer calls mamba-ssm's and causal-conv1d's kernels
    when they import; a profiled forward pass checks that their kernels really ran;
it measures
  * decode tokens/s at each batch: (N - 1) / (time(prompt + N new) - time(prompt + 1 new))
    with N = --decode-tokens, a --prompt-tokens prompt, medians of --repeats calls; the
    prompt's prefill and the first token cancel out (the same definition as
    scripts/bench_e2e.py);
  * the first call at each batch (prompt + N new) against the later ones: for cg=True
    its extra time is mostly the graph capture (rows run cg=False first, so Triton's
    kernel compilation is already paid by then);
  * prefill latency at each of --lengths, batch 1: generate() of one new token.

    python3 scripts/bench_baselines.py --json results/tmp/bench_baselines.json
    python3 scripts/bench_baselines.py --models 130m --batches 1 --lengths 512 2048 --repeats 5

Prints a markdown table and writes JSON (versions, GPU, date, command, every timing).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import sys
import time
import traceback

# The published configurations' shapes (state 16, expand 2, conv 4, vocabulary padded to 50280).
MODELS = {
    "130m": {"d_model": 768, "n_layer": 24},
    "1.4b": {"d_model": 2048, "n_layer": 48},
}
VOCAB_SIZE = 50280
ROWS = ("mamba_ssm cg=False", "mamba_ssm cg=True", "transformers")
# The modules a baseline needs, with what each one is; the compiled extensions are top-level modules.
REQUIRED_MODULES = (
    ("causal_conv1d", "the causal-conv1d package"),
    ("causal_conv1d_cuda", "causal-conv1d's compiled CUDA extension"),
    ("selective_scan_cuda", "mamba-ssm's compiled CUDA extension"),
    ("mamba_ssm", "the mamba-ssm package"),
    ("mamba_ssm.models.mixer_seq_simple", "mamba-ssm's MambaLMHeadModel"),
)
# Where and in what the models run; the CPU test of this script runs the transformers row on the CPU.
DEVICE = "cuda"
DTYPE = "float16"
# Kernel names (substrings) that show transformers ran the fused kernels, not its PyTorch fallback.
FUSED_KERNEL_MARKS = ("selective_scan", "causal_conv1d")


class BaselineUnavailable(RuntimeError):
    """A baseline package or its compiled extension cannot be imported, or there is no CUDA device."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["130m", "1.4b"])
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="decode batch sizes")
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048], help="prefill lengths (batch 1)")
    parser.add_argument("--decode-tokens", type=int, default=64, help="new tokens per decode measurement")
    parser.add_argument("--prompt-tokens", type=int, default=16, help="prompt length of the decode measurements")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    for name in ("batches", "lengths"):
        if any(value < 1 for value in getattr(args, name)):
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.decode_tokens < 2:
        parser.error(f"--decode-tokens must be at least 2 (the first new token comes from the prefill), "
                     f"got {args.decode_tokens}")
    for name in ("prompt_tokens", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    return args


def require_baselines() -> dict:
    """Import every baseline module, or raise BaselineUnavailable naming the first that fails and why."""
    for name, what in REQUIRED_MODULES:
        try:
            importlib.import_module(name)
        except Exception as error:  # an extension built for another torch fails with OSError or ImportError
            raise BaselineUnavailable(
                f"cannot import {name} ({what}): {type(error).__name__}: {error}. Install the wheels of "
                f"scripts/stage_baselines.sh (pip install --no-deps --target DIR) and put DIR on PYTHONPATH."
            ) from error
    import torch

    if not torch.cuda.is_available():
        raise BaselineUnavailable(f"no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda})")
    return versions()


def versions() -> dict:
    found = {}
    for name in ("torch", "mamba_ssm", "causal_conv1d", "transformers", "triton"):
        try:
            found[name] = getattr(importlib.import_module(name), "__version__", "unknown")
        except Exception as error:
            found[name] = f"not importable: {error}"
    import torch

    found["torch_cuda"] = torch.version.cuda
    found["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    found["python"] = platform.python_version()
    return found


# --- Timing -------------------------------------------------------------------------------------------


def timed(call, *args) -> float:
    import torch

    synchronize = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    call(*args)
    synchronize()
    return time.perf_counter() - start


def median_time(repeats: int, call, *args) -> float:
    return statistics.median(timed(call, *args) for _ in range(repeats))


def build_mamba_ssm(config: dict, seed: int):
    import torch
    from mamba_ssm.models.config_mamba import MambaConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

    torch.manual_seed(seed)
    cfg = MambaConfig(d_model=config["d_model"], n_layer=config["n_layer"], vocab_size=VOCAB_SIZE,
                      ssm_cfg={"layer": "Mamba1"}, rms_norm=True, residual_in_fp32=True, fused_add_norm=True,
                      pad_vocab_size_multiple=8)
    return MambaLMHeadModel(cfg, device=DEVICE, dtype=getattr(torch, DTYPE)).eval()


def build_transformers(config: dict, seed: int):
    import torch
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(seed)
    cfg = MambaConfig(vocab_size=VOCAB_SIZE, hidden_size=config["d_model"], num_hidden_layers=config["n_layer"],
                      state_size=16, expand=2, conv_kernel=4, residual_in_fp32=True)
    with torch.device(DEVICE):  # initialised on the GPU: a 1.4b model's random init on the CPU takes a while
        model = MambaForCausalLM(cfg).to(dtype=getattr(torch, DTYPE)).eval()
    model.generation_config.pad_token_id = 0
    return model


def generator(row: str, model):
    """``generate(ids, new_tokens)`` for one row: greedy, exactly ``new_tokens`` new tokens."""
    import torch

    def run(ids, new_tokens):
        with torch.inference_mode():
            if row == "transformers":
                out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                     min_new_tokens=new_tokens, do_sample=False)
            else:
                out = model.generate(ids, max_length=ids.shape[1] + new_tokens, cg=row.endswith("cg=True"),
                                     top_k=1, eos_token_id=None)
        if out.shape != (ids.shape[0], ids.shape[1] + new_tokens):
            raise RuntimeError(f"{row}: generate() returned shape {tuple(out.shape)}, expected "
                               f"{(ids.shape[0], ids.shape[1] + new_tokens)}")

    return run


def fused_kernels_ran(model, vocab: int) -> list:
    """The CUDA kernels of one prefill forward whose names show mamba-ssm's or causal-conv1d's kernels."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    ids = torch.randint(0, vocab, (1, 64), device=DEVICE)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE == "cuda" else [])
    with torch.inference_mode(), profile(activities=activities) as prof:
        model(ids)
        if DEVICE == "cuda":
            torch.cuda.synchronize()
    names = {event.key for event in prof.key_averages()}
    return sorted(name for name in names if any(mark in name.lower() for mark in FUSED_KERNEL_MARKS))


def measure_row(row: str, model, args) -> dict:
    import torch

    run = generator(row, model)
    result = {"decode": {}, "prefill_s": {}}
    n = args.decode_tokens
    for batch in args.batches:
        ids = torch.randint(0, VOCAB_SIZE, (batch, args.prompt_tokens), device=DEVICE)
        first = timed(run, ids, n)
        full = median_time(args.repeats, run, ids, n)
        one = median_time(args.repeats, run, ids, 1)
        result["decode"][str(batch)] = {
            "tokens_per_s": batch * (n - 1) / (full - one) if full > one else None,
            "step_ms": 1e3 * (full - one) / (n - 1),
            "first_call_s": first, "later_call_s": full, "first_call_extra_s": first - full,
            "prompt_plus_one_s": one,
        }
        print(f"  {row} batch {batch}: {result['decode'][str(batch)]}", flush=True)
    for length in args.lengths:
        ids = torch.randint(0, VOCAB_SIZE, (1, length), device=DEVICE)
        first = timed(run, ids, 1)
        result["prefill_s"][str(length)] = {"first_call_s": first, "median_s": median_time(args.repeats, run, ids, 1)}
        print(f"  {row} prefill {length}: {result['prefill_s'][str(length)]}", flush=True)
    return result


def measure(args, after_row=None) -> dict:
    """Every model and row; a row that fails is recorded with its error and the others still run.

    ``after_row(results)`` is called after each row, so a run cut short keeps what it measured.
    """
    import torch

    results = {}
    for name in args.models:
        results[name] = {}
        for row in ROWS:  # cg=False before cg=True: the first cg=True call then mostly captures graphs
            if row not in args.rows:
                continue
            print(f"== {name}: {row}", flush=True)
            entry = results[name][row] = {}
            model = None
            try:
                build = build_transformers if row == "transformers" else build_mamba_ssm
                model = build(MODELS[name], args.seed)
                if row == "transformers":
                    entry["fused_kernels"] = fused_kernels_ran(model, VOCAB_SIZE)
                    if not entry["fused_kernels"]:
                        print("  warning: transformers ran no mamba-ssm/causal-conv1d kernel (its PyTorch "
                              "fallback)", flush=True)
                entry.update(measure_row(row, model, args))
            except Exception as error:
                traceback.print_exc()
                entry["error"] = f"{type(error).__name__}: {error}"
            del model
            if DEVICE == "cuda":
                entry["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            if after_row is not None:
                after_row(results)
    return results


def failed_rows(results: dict) -> list:
    return [f"{name} {row}" for name, rows in results.items() for row, entry in rows.items() if "error" in entry]


# --- Report -------------------------------------------------------------------------------------------


def _cell(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_table(results: dict, batches, lengths) -> str:
    """A markdown table: one line per model and row; decode tokens/s, first-call extra, prefill ms."""
    header = ["model", "row"]
    header += [f"decode tok/s b{b}" for b in batches]
    header += [f"first call extra s b{b}" for b in batches]
    header += [f"prefill ms L{length}" for length in lengths]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, rows in results.items():
        for row, entry in rows.items():
            decode = entry.get("decode", {})
            prefill = entry.get("prefill_s", {})
            cells = [model, row]
            if "error" in entry:
                lines.append("| " + " | ".join(cells + ["error"] * (len(header) - 2)) + " |")
                continue
            cells += [_cell(decode.get(str(b), {}).get("tokens_per_s"), ".0f") for b in batches]
            cells += [_cell(decode.get(str(b), {}).get("first_call_extra_s"), ".2f") for b in batches]
            cells += [_cell(None if str(length) not in prefill else 1e3 * prefill[str(length)]["median_s"], ".1f")
                      for length in lengths]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        found = require_baselines()
    except BaselineUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(found), flush=True)
    started = time.time()

    def write(results, complete):
        report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "complete": complete, "versions": found,
                  "command": " ".join([sys.executable, *sys.argv]), "settings": vars(args), "dtype": DTYPE,
                  "weights": "random", "vocab_size": VOCAB_SIZE,
                  "models": {name: MODELS[name] for name in args.models},
                  "decode_definition": "batch * (N - 1) / (t(prompt + N new) - t(prompt + 1 new)), medians",
                  "seconds": round(time.time() - started, 1), "results": results,
                  "table": format_table(results, args.batches, args.lengths)}
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(report, handle, indent=1)
                handle.write("\n")
        return report

    results = measure(args, after_row=lambda partial: write(partial, complete=False))
    print(write(results, complete=True)["table"])
    failed = failed_rows(results)
    if failed:
        print(f"error: {len(failed)} row(s) failed: {', '.join(failed)} (tracebacks above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
