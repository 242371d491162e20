#!/usr/bin/env python3
"""Plot one end-to-end benchmark run (scripts/bench_e2e.py --json) against the GPU targets.

    python3 scripts/plot_e2e.py results/gpu/DATE/bench_e2e_gpu.json docs/img/e2e_h200.png

Three panels from the one JSON, so everything drawn was measured side by side in one run:
decode tokens/s by batch size (log scale) for every engine in the run, prefill latency by
prompt length, and the first call at a new prompt length against the second. The targets of
the 130m float16 configuration on the H200 are drawn as markers; the title names the date,
the GPU and the versions the JSON records. With --baselines, the rows of a
scripts/bench_baselines.py JSON (mamba-ssm's generate() and transformers on mamba-ssm's
kernels) for the same model join the decode and prefill panels: pass one written in the same
device call, as the title says nothing else about it.

    python3 scripts/plot_e2e.py RUN/bench_e2e_gpu.json docs/img/e2e.png --baselines RUN/bench_baselines.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The targets for mamba-130m in float16 on the H200: decode tokens/s by batch (CUDA graph),
# prefill ms by prompt length, and the first call's ceiling as a multiple of the second's.
DECODE_TARGETS = {1: 1800, 32: 50000}
PREFILL_TARGETS = {2048: 5.0}
FIRST_CALL_CEILING = 3.0

ENGINE_LABELS = {
    "ort-custom": "mamba-export, CUDA graph",
    "ort-custom-nograph": "mamba-export, no graph",
    "ort-custom-read-every-1": "mamba-export, tokens read after every step",
    "ort-custom-read-every-8": "mamba-export, tokens read every 8 steps",
    "ort-standard": "mamba-export standard ops",
    "transformers": "transformers eager",
    "mamba_ssm cg=True": "mamba-ssm generate(cg=True)",
    "mamba_ssm cg=False": "mamba-ssm generate(cg=False)",
    "transformers+kernels": "transformers, mamba-ssm's kernels",
}
# bench_baselines.py's row names, as they appear in the plot's results.
BASELINE_ROWS = {"mamba_ssm cg=True": "mamba_ssm cg=True", "mamba_ssm cg=False": "mamba_ssm cg=False",
                 "transformers": "transformers+kernels"}


def baseline_rows(baselines: dict, model: str) -> dict:
    """bench_baselines.py's rows for ``model`` ("preset:mamba-130m" or its key, "130m") in bench_e2e's
    form: decode tokens/s by batch and prefill ms by length. Raises ValueError naming what is missing."""
    if not isinstance(baselines.get("results"), dict):
        raise ValueError("not a bench_baselines.py result (no 'results' object)")
    key = model.split("mamba-", 1)[-1] if model.startswith("preset:") else model
    if key not in baselines["results"]:
        raise ValueError(f"it has no rows for the model {model!r} (it has {sorted(baselines['results'])})")
    rows = {}
    for name, row in baselines["results"][key].items():
        decode = {b: figures["tokens_per_s"] for b, figures in row.get("decode", {}).items()}
        prefill = {n: 1e3 * figures["median_s"] for n, figures in row.get("prefill_s", {}).items()}
        rows[BASELINE_ROWS.get(name, name)] = {"decode_tokens_per_s": decode, "prefill_ms": prefill}
    return rows


def _label(engine: str) -> str:
    return ENGINE_LABELS.get(engine, engine)


def _grouped_bars(axis, series: dict, keys: list, colors: dict) -> dict:
    """Bars of each engine's value per key, in the engine's colour; returns each key's x position."""
    width = 0.8 / max(len(series), 1)
    positions = {key: index for index, key in enumerate(keys)}
    for offset, (engine, values) in enumerate(series.items()):
        xs = [positions[k] + (offset - (len(series) - 1) / 2) * width for k in keys if k in values]
        axis.bar(xs, [values[k] for k in keys if k in values], width, label=_label(engine), color=colors[engine])
    axis.set_xticks(range(len(keys)), [str(k) for k in keys])
    axis.set_xlim(-0.5, len(keys) - 0.5)  # every key's slot, whichever engines have a bar in it
    return positions


def _panel(axis, results: dict, key: str, targets: dict, target_label: str, colors: dict) -> None:
    """Every engine's ``key`` figures as bars on a log scale, the targets as markers."""
    series = {e: {int(k): v for k, v in r.get(key, {}).items()} for e, r in results.items()}
    series = {e: v for e, v in series.items() if v}
    keys = sorted({k for values in series.values() for k in values})
    positions = _grouped_bars(axis, series, keys, colors)
    for where, goal in targets.items():
        if where in positions:
            axis.plot(positions[where], goal, "k_", markersize=40, mew=2)
    axis.plot([], [], "k_", mew=2, label=target_label)
    axis.set_yscale("log")
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)


def plot(run: dict, target: Path, extra_rows: dict | None = None) -> None:
    """``extra_rows``: more engines' rows in the run's form (``baseline_rows``), drawn beside its own."""
    results = {**run["results"], **(extra_rows or {})}
    figure, (decode, prefill, first) = plt.subplots(1, 3, figsize=(17, 6.4))
    # One colour per engine in every panel, whichever figures it has.
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {engine: cycle[index % len(cycle)] for index, engine in enumerate(results)}

    _panel(decode, results, "decode_tokens_per_s", DECODE_TARGETS, "target (CUDA graph)", colors)
    decode.set(title="decode through generate()", xlabel="batch", ylabel="tokens/s")
    _panel(prefill, results, "prefill_ms", PREFILL_TARGETS, "target", colors)
    prefill.set(title="prefill: generate(max_new_tokens=1)", xlabel="prompt tokens", ylabel="ms")

    calls = results.get("ort-custom", {}).get("first_call_ms", {})
    lengths = sorted(int(n) for n in calls)
    if lengths:
        firsts = [calls[str(n)]["first"] for n in lengths]
        seconds = [calls[str(n)]["second"] for n in lengths]
        xs = range(len(lengths))
        first.bar([x - 0.2 for x in xs], firsts, 0.4, label="first call")
        first.bar([x + 0.2 for x in xs], seconds, 0.4, label="second call")
        first.plot([x + 0.2 for x in xs], [FIRST_CALL_CEILING * s for s in seconds], "k_", markersize=18, mew=2,
                   label=f"ceiling ({FIRST_CALL_CEILING:g}x the second)")
        first.set_xticks(list(xs), [str(n) for n in lengths])
    first.set(title="first call at a new prompt length", xlabel="prompt tokens", ylabel="ms")
    first.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)

    versions, settings = run.get("versions", {}), run.get("args", {})
    figure.suptitle(f"{run.get('date', '?')}, {versions.get('gpu', '?')}: "
                    f"onnxruntime {versions.get('onnxruntime', '?')}, torch {versions.get('torch', '?')}, "
                    f"transformers {versions.get('transformers', '?')}; "
                    f"{settings.get('model', '')} {settings.get('dtype', '')}", fontsize=10)
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a JSON written by scripts/bench_e2e.py --json")
    parser.add_argument("target", type=Path, help="the PNG to write")
    parser.add_argument("--baselines", type=Path,
                        help="a JSON written by scripts/bench_baselines.py --json in the same device call")
    args = parser.parse_args()
    try:
        run = json.loads(args.run.read_text())
    except (OSError, json.JSONDecodeError) as error:
        parser.error(f"cannot read {args.run}: {error}")
    if not isinstance(run, dict) or not isinstance(run.get("results"), dict):
        parser.error(f"{args.run} is not a bench_e2e.py result (no 'results' object)")
    extra_rows = None
    if args.baselines is not None:
        try:
            extra_rows = baseline_rows(json.loads(args.baselines.read_text()), run.get("args", {}).get("model", ""))
        except (OSError, json.JSONDecodeError, ValueError, AttributeError, KeyError, TypeError) as error:
            parser.error(f"cannot use --baselines {args.baselines}: {error}")
    plot(run, args.target, extra_rows)
    print(f"wrote {args.target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
