"""Prompt and tokenizer plumbing of the CLI, kept apart so the commands stay thin."""

from __future__ import annotations

import sys
from pathlib import Path

from mamba_export.errors import MambaExportError

TOKENIZER_FILE = "tokenizer.json"


def read_prompt(prompt: str | None) -> str:
    """The ``--prompt`` text, else standard input; an empty prompt is an error."""
    if prompt is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise MambaExportError("no prompt: pass --prompt TEXT, --ids 1,2,3, or pipe text on standard input")
        prompt = sys.stdin.read()
    prompt = prompt.rstrip("\n")
    if not prompt:
        raise MambaExportError("the prompt is empty: pass --prompt TEXT or pipe text on standard input")
    return prompt


def parse_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.replace(" ", ",").split(",") if part]
    except ValueError as error:
        raise MambaExportError(f"--ids must be comma-separated integers, got {text!r}") from error
    if not ids or min(ids) < 0:
        raise MambaExportError(f"--ids must be non-negative integers, got {text!r}")
    return ids


def load_tokenizer(path):
    """A ``tokenizers.Tokenizer`` from tokenizer.json or a folder holding one."""
    candidate = Path(path)
    if candidate.is_dir():
        candidate = candidate / TOKENIZER_FILE
    if not candidate.is_file():
        raise MambaExportError(
            f"no tokenizer at {candidate}; pass --tokenizer PATH/tokenizer.json, or --ids to give token ids"
        )
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(candidate))
    except Exception as error:  # tokenizers raises a bare Exception for a malformed file
        raise MambaExportError(f"{candidate} is not a valid tokenizer.json: {error}") from error
