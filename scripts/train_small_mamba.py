#!/usr/bin/env python3
"""Train the small Mamba in models/fortunes-mamba on the Debian fortunes corpus (CPU, or --device cuda).

Why a training script of our own: parity and precision can only be judged on weights that have
learned something, and the project must be able to rebuild that model from public data.

Steps (each seeded; the corpus comes from scripts/prepare_fortunes.py):
1. train a byte-level BPE tokenizer (HF `tokenizers`) on the train split;
2. build a `MambaForCausalLM` from a `MambaConfig` and train it on 128-token windows of the
   train split (every fortune followed by the end-of-text token), AdamW with warm-up and cosine
   decay, for --steps steps or until --time-budget seconds have passed;
3. measure held-out perplexity on the test split (non-overlapping windows) and a unigram baseline
   with the same tokenizer on the same predicted tokens;
4. write a Hugging Face checkpoint folder (config, model.safetensors, tokenizer files,
   generation_config.json) plus train_log.json and loss.png.

The training forward pass uses the checkpoint's own modules (embeddings, norms, projections,
convolution, LM head) but runs the selective scan in closed form (`scan_states`): transformers'
reference path loops over time in Python, and its backward pass takes minutes per step on a CPU.
Before training, the script checks that both forwards give the same logits, so the trained weights
mean the same thing to transformers as they did here.

    nice python3 scripts/train_small_mamba.py --data build/fortunes --out models/fortunes-mamba
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

EOS = "<|endoftext|>"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def read_split(data: Path, name: str) -> list[str]:
    with open(data / f"{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


# --- tokenizer ---------------------------------------------------------------------------------

def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE (no unknown tokens possible); EOS is id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_tokenizer(tok, out: Path, max_length: int) -> None:
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json, loadable by AutoTokenizer."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS,
                                   pad_token=EOS, model_max_length=max_length)
    fast.save_pretrained(out)


def encode_stream(tok, texts: list[str]) -> np.ndarray:
    """All texts as one id stream, each followed by EOS."""
    eos = tok.token_to_id(EOS)
    ids: list[int] = []
    for enc in tok.encode_batch(texts):
        ids.extend(enc.ids)
        ids.append(eos)
    return np.asarray(ids, dtype=np.int64)


# --- the training forward ------------------------------------------------------------------------

# exp() of float64 stays finite below about 709; past this span of log-decay the loop is used.
MAX_LOG_DECAY_SPAN = 600.0


def scan_states(log_decay: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """h_t = exp(log_decay_t) * h_{t-1} + inputs_t with h_{-1} = 0, along dim 2 of (B, D, T, N).

    Closed form, in float64: with S_t = sum_{r<=t} log_decay_r (decreasing) and m = S_T,
    h_t = sum_{s<=t} exp(S_t - S_s) inputs_s = exp(S_t - m) * cumsum_s(exp(m - S_s) inputs_s).
    Both exponents stay finite while S_0 - S_T < MAX_LOG_DECAY_SPAN; a batch that exceeds it
    takes the plain loop over time instead (same result, slower).
    transformers' reference path loops over time indexing full tensors, whose backward allocates a
    full-size gradient per step: minutes per training step on a CPU.
    """
    s = torch.cumsum(log_decay.double(), dim=2)
    end = s[:, :, -1:]
    if (s[:, :, :1] - end).max().item() < MAX_LOG_DECAY_SPAN:
        return (torch.exp(s - end) * torch.cumsum(torch.exp(end - s) * inputs.double(), dim=2)).float()
    state = torch.zeros_like(inputs[:, :, 0])
    states = []
    for a, b in zip(torch.exp(log_decay).unbind(2), inputs.unbind(2), strict=True):
        state = a * state + b
        states.append(state)
    return torch.stack(states, dim=2)


def mixer_forward(mixer, hidden: torch.Tensor) -> torch.Tensor:
    """MambaMixer's computation on (batch, length, hidden), with `scan_states` for the scan."""
    length = hidden.shape[1]
    xz = mixer.in_proj(hidden).transpose(1, 2)
    x, z = xz.chunk(2, dim=1)
    x = mixer.act(mixer.conv1d(x)[..., :length])                         # (B, D, T)
    params = mixer.x_proj(x.transpose(1, 2))
    dt, b_mat, c_mat = torch.split(
        params, [mixer.time_step_rank, mixer.ssm_state_size, mixer.ssm_state_size], dim=-1)
    dt = F.softplus(mixer.dt_proj(dt)).transpose(1, 2)                     # (B, D, T)
    a_mat = -torch.exp(mixer.A_log.float())                                # (D, N)
    log_decay = a_mat[None, :, None, :] * dt[..., None]                    # (B, D, T, N)
    inputs = (dt * x)[..., None] * b_mat[:, None, :, :]                    # (B, D, T, N)
    states = scan_states(log_decay, inputs)
    y = torch.einsum("bdtn,btn->bdt", states, c_mat) + x * mixer.D[None, :, None]
    y = y * mixer.act(z)
    return mixer.out_proj(y.transpose(1, 2))


def model_forward(model, ids: torch.Tensor) -> torch.Tensor:
    """MambaForCausalLM's logits through the modules of `model`, with our mixer forward."""
    backbone = model.backbone
    hidden = backbone.embeddings(ids)
    for block in backbone.layers:
        residual = hidden.float() if block.residual_in_fp32 else hidden
        hidden = residual + mixer_forward(block.mixer, block.norm(hidden))
    hidden = backbone.norm_f(hidden)
    return model.lm_head(hidden).float()


def check_forward_matches(model, vocab_size: int, seed: int) -> float:
    """Largest |logit difference| between our forward and transformers' own, relative to the logit scale."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (2, 64), generator=g)
    with torch.no_grad():
        ours = model_forward(model, ids)
        theirs = model(input_ids=ids).logits.float()
    err = ((ours - theirs).abs().max() / theirs.abs().max()).item()
    if not err < 1e-4:
        raise SystemExit(f"the training forward differs from transformers' by {err:.2e} (relative); refusing to train")
    return err


# --- evaluation ----------------------------------------------------------------------------------

def windows(stream: np.ndarray, length: int) -> torch.Tensor:
    """Non-overlapping windows of length+1 tokens (inputs and shifted targets); the tail is dropped."""
    n = (len(stream) - 1) // length
    idx = np.arange(n)[:, None] * length + np.arange(length + 1)[None, :]
    return torch.from_numpy(stream[idx])


@torch.no_grad()
def held_out_nll(model, test_windows: torch.Tensor, batch: int) -> float:
    total, count = 0.0, 0
    model.eval()
    device = next(model.parameters()).device
    for i in range(0, len(test_windows), batch):
        w = test_windows[i:i + batch].to(device)
        logits = model_forward(model, w[:, :-1])
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1),
                                 reduction="sum").item()
        count += w[:, 1:].numel()
    model.train()
    return total / count


def unigram_nll(train_stream: np.ndarray, test_windows: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy of add-one-smoothed train token frequencies on the same predicted test tokens."""
    counts = np.bincount(train_stream, minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    targets = test_windows[:, 1:].reshape(-1).numpy()
    return float(-logp[targets].mean())


@torch.no_grad()
def greedy(model, tok, prompt: str, new_tokens: int) -> str:
    """transformers' own greedy decoding (the reference that exports are compared with)."""
    ids = torch.tensor([tok.encode(prompt).ids])
    out = model.generate(ids, max_new_tokens=new_tokens, do_sample=False)
    return tok.decode(out[0].tolist())


# --- main ----------------------------------------------------------------------------------------

def plot(log_rows: list[dict], evals: list[dict], unigram_ppl: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in log_rows], [r["loss"] for r in log_rows], label="train loss (window mean)", lw=1)
    ax.plot([e["step"] for e in evals[:-1]], [e["nll"] for e in evals[:-1]], "o-", label="held-out loss (subset)")
    ax.plot([evals[-1]["step"]], [evals[-1]["nll"]], "s", label="held-out loss (all)")
    ax.axhline(math.log(unigram_ppl), color="grey", ls="--", label="unigram baseline (held-out)")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title("fortunes-mamba")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("build/fortunes"))
    ap.add_argument("--out", type=Path, default=Path("models/fortunes-mamba"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab-size", type=int, default=2048)
    ap.add_argument("--hidden-size", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--state-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--eval-windows", type=int, default=64, help="test windows for the evaluations during training")
    ap.add_argument("--time-budget", type=float, default=30 * 60, help="stop training after this many seconds")
    ap.add_argument("--final-windows", type=int, default=0, help="test windows for the final figure (0: all)")
    ap.add_argument("--device", default="cpu", help="where to train (cpu, cuda); the checkpoint is saved from the CPU")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--measure", type=int, default=0, help="only time this many steps and exit")
    args = ap.parse_args()

    from safetensors.torch import save_file
    from transformers import GenerationConfig, MambaConfig, MambaForCausalLM

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    train_texts, test_texts = read_split(args.data, "train"), read_split(args.data, "test")
    log(f"corpus: {len(train_texts)} train and {len(test_texts)} test fortunes")
    tok = train_tokenizer(train_texts, args.vocab_size)
    vocab_size = tok.get_vocab_size()
    train_stream, test_stream = encode_stream(tok, train_texts), encode_stream(tok, test_texts)
    test_windows = windows(test_stream, args.seq_len)
    log(f"tokenizer: {vocab_size} tokens; {len(train_stream)} train and {len(test_stream)} test tokens")

    eos = tok.token_to_id(EOS)
    config = MambaConfig(
        vocab_size=vocab_size, hidden_size=args.hidden_size, num_hidden_layers=args.layers,
        state_size=args.state_size, expand=2, conv_kernel=4, time_step_rank=math.ceil(args.hidden_size / 16),
        use_bias=False, use_conv_bias=True, residual_in_fp32=True, tie_word_embeddings=True,
        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    model = MambaForCausalLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params:,} parameters ({args.layers} layers, hidden {args.hidden_size}, state {args.state_size})")
    err = check_forward_matches(model, vocab_size, args.seed)
    log(f"training forward matches transformers' within {err:.1e} (relative, max over logits)")

    model.to(args.device)
    unigram = unigram_nll(train_stream, test_windows, vocab_size)
    log(f"unigram baseline: held-out perplexity {math.exp(unigram):.1f}")

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or name.endswith(("A_log", ".D")) else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    rng = np.random.default_rng(args.seed)
    span = args.seq_len + 1
    rows, evals, window = [], [], []
    start = time.time()
    step = 0
    for step in range(args.measure or args.steps):
        if time.time() - start > args.time_budget:
            log(f"time budget of {args.time_budget:.0f} s reached at step {step}")
            break
        offsets = rng.integers(0, len(train_stream) - span, size=args.batch)
        batch = torch.from_numpy(train_stream[offsets[:, None] + np.arange(span)[None, :]]).to(args.device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        logits = model_forward(model, batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab_size), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        window.append(loss.item())
        if args.measure:
            log(f"step {step}: loss {loss.item():.3f}, {time.time() - start:.1f} s so far")
            continue
        if (step + 1) % 5 == 0:
            rows.append({"step": step + 1, "loss": float(np.mean(window)), "lr": lr_at(step),
                         "elapsed_s": round(time.time() - start, 1)})
            window = []
            if (step + 1) % 10 == 0:
                r = rows[-1]
                log(f"step {r['step']}: loss {r['loss']:.3f} lr {r['lr']:.2e} ({r['elapsed_s']:.0f} s)")
        if (step + 1) % args.eval_every == 0:
            nll = held_out_nll(model, test_windows[:args.eval_windows], 32)
            evals.append({"step": step + 1, "nll": nll, "ppl": math.exp(nll)})
            log(f"step {step + 1}: held-out perplexity {math.exp(nll):.1f}")
    if args.measure:
        log(f"{(time.time() - start) / args.measure:.2f} s per step")
        return
    steps_done = step + 1 if step + 1 == args.steps else step
    train_s = time.time() - start

    args.out.mkdir(parents=True, exist_ok=True)
    model.to("cpu").eval()
    config.save_pretrained(args.out)
    # One copy of the tied embedding: transformers ties lm_head to it on load.
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, args.out / "model.safetensors", metadata={"format": "pt"})
    GenerationConfig(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, do_sample=False,
                     max_new_tokens=48).save_pretrained(args.out)
    save_tokenizer(tok, args.out, args.seq_len * 8)

    nll = held_out_nll(model, test_windows[:args.final_windows or len(test_windows)], 32)
    evals.append({"step": steps_done, "nll": nll, "ppl": math.exp(nll), "windows": args.final_windows or "all"})
    log(f"done: {steps_done} steps in {train_s / 60:.1f} min; held-out perplexity {math.exp(nll):.1f} "
        f"(unigram {math.exp(unigram):.1f})")

    reloaded = MambaForCausalLM.from_pretrained(args.out).eval()
    prompts = ["The meaning of life is", "A computer", "Never trust a man who"]
    samples = {p: greedy(reloaded, tok, p, 32) for p in prompts}
    for text in samples.values():
        log(f"greedy: {text!r}")

    manifest = json.loads((args.data / "manifest.json").read_text())
    result = {
        "command": "nice python3 scripts/train_small_mamba.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("measure",)),
        "args": {k: str(v) for k, v in vars(args).items()},
        "torch": torch.__version__,
        "corpus": {k: manifest[k] for k in ("source", "version", "sha256", "licence", "split_rule", "counts")},
        "tokens": {"train": int(len(train_stream)), "test": int(len(test_stream)),
                   "test_predicted": int(test_windows[:, 1:].numel())},
        "parameters": n_params,
        "steps": steps_done,
        "train_seconds": round(train_s, 1),
        "held_out": {"nll": nll, "perplexity": math.exp(nll)},
        "unigram": {"nll": unigram, "perplexity": math.exp(unigram)},
        "forward_check_rel_err": err,
        "evals": evals,
        "log": rows,
        "greedy_samples": samples,
    }
    (args.out / "train_log.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(rows, evals, math.exp(unigram), args.out / "loss.png")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
