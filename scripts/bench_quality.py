"""Quality table: what each export dtype and quantization costs, against PyTorch float32.

For one model folder (or preset), each row is PyTorch float32 or one export, and each
column is measured here, on the same tokens:
  * held-out perplexity (the text given by --text, split into --context-token windows;
    seeded random tokens when no text is given, where perplexity means nothing);
  * top-1 agreement with PyTorch float32: the share of positions whose most likely next
    token is the same, over --tokens positions (at least 2,000);
  * greedy agreement length: over --prompts prompts, how many greedy tokens (of
    --greedy-tokens) match PyTorch float32 before the first difference (mean, min);
  * file size of model.onnx (and its data file);
  * CPU decode tokens/s at batch 1: (new tokens - 1) / (time(N new) - time(1 new)).

The bfloat16 row needs the CUDA provider (ONNX Runtime has no bfloat16 CPU kernels); on a
machine without it the row is listed as skipped. --decode-only measures only size and
decode speed (the mamba-130m config with random weights, where quality means nothing):

    python3 scripts/bench_quality.py --model models/NAME --json results/bench_quality.json
    nice python3 scripts/bench_quality.py --model preset:mamba-130m --decode-only \\
        --rows custom-fp32 custom-int4-b32 custom-int4-b128 --json results/bench_int4_decode_cpu.json

Prints a table and writes JSON (machine, versions, command, every number).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_e2e import load_average, machine, median_seconds, versions  # noqa: E402

# row name -> ExportOptions fields (None: PyTorch float32 itself)
ROWS = {
    "pytorch-fp32": None,
    "custom-fp32": dict(backend="custom", dtype="fp32"),
    "standard-fp32": dict(backend="standard", dtype="fp32"),
    "custom-fp16": dict(backend="custom", dtype="fp16"),
    "standard-fp16": dict(backend="standard", dtype="fp16"),
    "custom-bf16": dict(backend="custom", dtype="bf16"),
    "custom-int4-b32": dict(backend="custom", dtype="fp32", quantize="int4", block_size=32),
    "custom-int4-b128": dict(backend="custom", dtype="fp32", quantize="int4", block_size=128),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder or preset:NAME")
    parser.add_argument("--text", default=None,
                        help="held-out text: a .txt file, or JSON lines of {\"text\": ...} documents (each "
                             "followed by the end-of-text token, as scripts/prepare_fortunes.py writes its "
                             "test split); default: random tokens")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--tokens", type=int, default=2048, help="positions for perplexity and top-1 agreement")
    parser.add_argument("--context", type=int, default=256, help="tokens per evaluation window")
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--greedy-tokens", type=int, default=32)
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--accuracy-level", type=int, default=None, help="int4 rows (default: the export's)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for ORT and PyTorch (0: default)")
    parser.add_argument("--decode-only", action="store_true", help="only file size and decode tokens/s")
    parser.add_argument("--reuse-exports", action="store_true",
                        help="use the exports already in --workdir (same rows and options) instead of exporting")
    parser.add_argument("--workdir", default="build/bench_quality")
    parser.add_argument("--json", default=None)
    return parser.parse_args()


def held_out_tokens(args, vocab: int) -> tuple[np.ndarray, str]:
    """(tokens (n,), where they came from)."""
    if args.text:
        from tokenizers import Tokenizer

        path = Path(args.text)
        tokenizer = Tokenizer.from_file(str(Path(args.model) / "tokenizer.json"))
        if path.suffix == ".jsonl":
            eos = json.loads((Path(args.model) / "config.json").read_text())["eos_token_id"]
            documents = [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
            ids = np.array([t for doc in documents for t in [*tokenizer.encode(doc).ids, eos]], np.int64)
        else:
            ids = np.array(tokenizer.encode(path.read_text()).ids, np.int64)
        return ids, f"{path} ({len(ids)} tokens)"
    rng = np.random.default_rng(0)
    return rng.integers(0, vocab, args.tokens + args.prompts * args.prompt_tokens), "random tokens (no held-out text)"


def windows(tokens: np.ndarray, args) -> list:
    """Evaluation windows of --context tokens covering at least --tokens predicted positions."""
    size = args.context + 1
    count = -(-args.tokens // args.context)
    if len(tokens) < count * size:
        raise SystemExit(f"held-out text has {len(tokens)} tokens; {count * size} are needed for --tokens "
                         f"{args.tokens} at --context {args.context}")
    return [tokens[i * size:(i + 1) * size] for i in range(count)]


def prompts(tokens: np.ndarray, args) -> list:
    tail = tokens[-args.prompts * args.prompt_tokens:]
    return [tail[i * args.prompt_tokens:(i + 1) * args.prompt_tokens] for i in range(args.prompts)]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


class TorchEngine:
    def __init__(self, model):
        self.model = model

    def logits(self, ids: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(input_ids=torch.from_numpy(ids[None])).logits[0].float().numpy()

    def greedy(self, prompt: np.ndarray, n: int) -> np.ndarray:
        """One full forward per new token and its argmax, end-of-text included (transformers'
        generate with min_new_tokens would forbid that token, and the exports do not)."""
        ids = np.asarray(prompt, np.int64)
        for _ in range(n):
            ids = np.append(ids, self.logits(ids)[-1].argmax())
        return ids[len(prompt):]


class OrtEngine:
    def __init__(self, model):
        self.model = model

    def logits(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(ids[None]).logits[0], dtype=np.float32)

    def greedy(self, prompt: np.ndarray, n: int) -> np.ndarray:
        return self.model.generate(prompt[None], max_new_tokens=n, eos_token_id=[])[0, len(prompt):]


def quality(engine, reference_top1, reference_greedy, data, args) -> dict:
    nll, agree, count = 0.0, 0, 0
    for index, window in enumerate(data["windows"]):
        logits = engine.logits(window[:-1])
        nll -= log_softmax(logits)[np.arange(len(window) - 1), window[1:]].sum()
        top1 = logits.argmax(-1)
        agree += int((top1 == reference_top1[index]).sum()) if reference_top1 is not None else len(top1)
        count += len(top1)
    lengths = []
    for prompt, want in zip(data["prompts"], reference_greedy or [None] * len(data["prompts"]), strict=True):
        got = engine.greedy(prompt, args.greedy_tokens)
        same = got == want if want is not None else np.ones(len(got), bool)
        lengths.append(int(np.argmin(same)) if not same.all() else len(same))
    return {"perplexity": float(np.exp(nll / count)), "top1_agreement": agree / count, "positions": count,
            "greedy_agreement_mean": float(np.mean(lengths)), "greedy_agreement_min": int(min(lengths))}


def decode_speed(engine: OrtEngine, vocab: int, args) -> float:
    prompt = np.random.default_rng(1).integers(2, vocab, (1, 16), dtype=np.int64)
    n = args.decode_tokens

    def generate(count):
        return engine.model.generate(prompt, max_new_tokens=count, eos_token_id=[])

    full = median_seconds(lambda: generate(n), args.repeats)
    one = median_seconds(lambda: generate(1), args.repeats)
    return (n - 1) / max(full - one, 1e-9)


def export_row(name: str, fields: dict, args) -> Path:
    from mamba_export.export.convert import export
    from mamba_export.options import ExportOptions

    fields = dict(fields)
    if args.accuracy_level is not None and "quantize" in fields:
        fields["accuracy_level"] = args.accuracy_level
    out = Path(args.workdir) / name
    if args.reuse_exports and (out / "export_info.json").is_file():
        return out
    start = time.perf_counter()
    export(args.model, out, ExportOptions(**fields, logits="all", validate=False, force=True, show_progress=False))
    print(f"  exported {name} in {time.perf_counter() - start:.0f} s", flush=True)
    return out


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.name.startswith("model.onnx"))


def run_row(name: str, args, data, reference) -> dict:
    import onnxruntime as ort

    from mamba_export.options import RuntimeOptions
    from mamba_export.runtime.model import ORTMambaForCausalLM

    fields = ROWS[name]
    if fields.get("dtype") == "bf16" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return {"skipped": "bf16 runs only on the CUDA provider (no bfloat16 CPU kernels in ONNX Runtime)"}
    provider = "cuda" if fields.get("dtype") == "bf16" else "cpu"
    folder = export_row(name, fields, args)
    engine = OrtEngine(ORTMambaForCausalLM.from_pretrained(
        folder, options=RuntimeOptions(provider=provider, intra_op_threads=args.threads)))
    row = {"provider": provider, "file_bytes": folder_bytes(folder), "load_1min_start": load_average()[0]}
    if provider == "cpu":
        row["decode_tokens_per_s"] = decode_speed(engine, data["vocab"], args)
    if not args.decode_only:
        row.update(quality(engine, reference["top1"], reference["greedy"], data, args))
    row["load_1min_end"] = load_average()[0]
    return row


def reference_row(args, data) -> tuple[dict, dict]:
    import torch

    from mamba_export.export.loading import load

    model = load(args.model).model.float().eval()
    engine = TorchEngine(model)
    top1 = [engine.logits(w[:-1]).argmax(-1) for w in data["windows"]]
    greedy = [engine.greedy(p, args.greedy_tokens) for p in data["prompts"]]
    row = quality(engine, top1, greedy, data, args)
    row["file_bytes"] = sum(p.numel() * p.element_size() for p in model.parameters())
    row["threads"] = torch.get_num_threads()
    return row, {"top1": top1, "greedy": greedy}


def print_table(rows: dict) -> None:
    head = ["row", "perplexity", "top-1 agree", "greedy agree (mean/min)", "size MB", "decode tok/s"]
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for name, row in rows.items():
        if "skipped" in row:
            print(" | ".join([name, f"skipped: {row['skipped']}"] + [""] * (len(head) - 2)))
            continue
        cells = [name,
                 f"{row['perplexity']:.3f}" if "perplexity" in row else "-",
                 f"{row['top1_agreement']:.2%}" if "top1_agreement" in row else "-",
                 f"{row['greedy_agreement_mean']:.1f} / {row['greedy_agreement_min']}"
                 if "greedy_agreement_mean" in row else "-",
                 f"{row['file_bytes'] / 1e6:.1f}",
                 f"{row['decode_tokens_per_s']:.1f}" if "decode_tokens_per_s" in row else "-"]
        print(" | ".join(cells))


def main() -> int:
    args = parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from mamba_export.export.loading import load

    vocab = int(load(args.model).model.config.vocab_size)
    tokens, source = held_out_tokens(args, vocab)
    data = {"vocab": vocab, "windows": [] if args.decode_only else windows(tokens, args),
            "prompts": [] if args.decode_only else prompts(tokens, args)}
    rows, reference = {}, {"top1": None, "greedy": None}
    if "pytorch-fp32" in args.rows and not args.decode_only:
        rows["pytorch-fp32"], reference = reference_row(args, data)
    for name in args.rows:
        if ROWS[name] is not None:
            print(f"{name} ...", flush=True)
            rows[name] = run_row(name, args, data, reference)
    result = {"command": " ".join(sys.argv), "machine": machine(), "versions": versions(),
              "cpu_count": os.cpu_count(), "model": args.model, "held_out": source, "args": vars(args),
              "rows": rows}
    print_table(rows)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
