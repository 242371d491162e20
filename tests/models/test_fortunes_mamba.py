"""The trained checkpoint in models/fortunes-mamba, exported like any hub checkpoint.

It is the one model in the repository with learned weights, so it is where "the export
generates the same text as transformers" can be asked of real text. The model is small
(about 3 M parameters), so exporting it and decoding a few dozen tokens costs seconds.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "fortunes-mamba"
PROMPTS = ("The meaning of life is", "A computer", "Never trust a man who")
NEW_TOKENS = 24


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mamba_export", *map(str, args)], capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from mamba_export.runtime.library import build_library

    build_library()
    out = tmp_path_factory.mktemp("fortunes") / "export"
    result = run_cli("export", "--model", MODEL_DIR, out, "--quiet", "--no-check")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def reference():
    from transformers import AutoTokenizer, MambaForCausalLM

    return MambaForCausalLM.from_pretrained(MODEL_DIR).eval(), AutoTokenizer.from_pretrained(MODEL_DIR)


def transformers_greedy(reference, prompt: str) -> str:
    import torch

    model, tokenizer = reference
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
    return tokenizer.decode(out[0], skip_special_tokens=True)


def looks_like_words(text: str) -> bool:
    """Mostly short alphabetic words: what a model that learned English spelling emits.

    Untrained weights glue sub-word pieces into long runs ("computerostostostical") or emit
    stray bytes, and fail this.
    """
    pieces = text.split()
    words = [p for p in (re.sub(r"[^\w']", "", piece) for piece in pieces) if p]
    return (all(c.isprintable() or c in "\n\t" for c in text) and "\ufffd" not in text
            and len(words) >= 4
            and all(w.isascii() and len(w) <= 14 for w in words)
            and sum(w.isalpha() for w in words) >= 0.8 * len(words)
            and len(set(w.lower() for w in words)) >= 3)


def test_the_checkpoint_is_a_complete_hugging_face_folder():
    from transformers import AutoConfig, AutoTokenizer

    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                 "tokenizer_config.json", "README.md"):
        assert (MODEL_DIR / name).is_file(), name
    assert (MODEL_DIR / "model.safetensors").stat().st_size < 16 * 2**20
    config = AutoConfig.from_pretrained(MODEL_DIR)
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
    assert config.model_type == "mamba" and len(tokenizer) == config.vocab_size
    assert tokenizer.eos_token_id == config.eos_token_id
    assert tokenizer.decode(tokenizer("A fortune, told.").input_ids) == "A fortune, told."


def test_the_recorded_metrics_beat_the_unigram_baseline():
    log = json.loads((MODEL_DIR / "train_log.json").read_text())
    assert log["held_out"]["perplexity"] < 0.5 * log["unigram"]["perplexity"]


def test_the_word_check_rejects_untrained_output():
    assert not looks_like_words("A computer computerostostostosticalicalical buildatureatureature")
    assert not looks_like_words("Never trust a man who who\x02\ufffd\ufffd\ufffd")
    assert looks_like_words("A computer is a great way to make a living.")


@pytest.mark.parametrize("prompt", PROMPTS)
def test_cli_greedy_text_matches_transformers(exported, reference, prompt):
    result = run_cli("generate", exported, "--prompt", prompt, "--max-new-tokens", NEW_TOKENS)
    assert result.returncode == 0, result.stderr
    text = result.stdout.removesuffix("\n")  # the newline print() adds
    assert text == transformers_greedy(reference, prompt)
    assert text.startswith(prompt)
    assert looks_like_words(text[len(prompt):]), text


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_half_precision_export_passes_the_parity_suite_on_cuda(tmp_path, dtype):
    """Learned weights keep PyTorch's own half-precision error small, so every check of
    the suite is conclusive here and must pass on the CUDA provider (exit 0; 3 would be
    inconclusive, 1 failed)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("needs onnxruntime-gpu with CUDAExecutionProvider and a GPU")
    out = tmp_path / dtype
    result = run_cli("export", "--model", MODEL_DIR, out, "--dtype", dtype, "--device", "cuda", "--quiet",
                     "--no-check")
    assert result.returncode == 0, result.stderr
    check = run_cli("check", out, "--provider", "cuda")
    print(check.stdout)
    assert check.returncode == 0, check.stdout + check.stderr
