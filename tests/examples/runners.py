"""Helpers of the embedding-example tests: the prompt, the Python runtime's greedy
tokens as the reference, and running a program under test."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
NODE_EXAMPLE = REPO / "examples" / "node"
PROMPT = [3, 17, 5, 42, 8, 60, 2]
NEW_TOKENS = 12
# tests.support.tiny_models.tiny_model arguments. With tied embeddings a random tiny model
# repeats one token forever; this untied one gives a varied greedy sequence that changes
# when the states are not carried (test_cpp_runner checks that), so a comparison can fail.
TEST_MODEL = ("untied_head", False, 1)


def python_greedy(folder: Path, prompt=PROMPT, new_tokens=NEW_TOKENS) -> list[int]:
    """The new token ids that the Python runtime's greedy generate() picks (no early stop)."""
    from mamba_export.runtime.model import ORTMambaForCausalLM

    model = ORTMambaForCausalLM.from_pretrained(folder)
    ids = model.generate(np.array([prompt], dtype=np.int64), max_new_tokens=new_tokens, eos_token_id=[])
    return [int(t) for t in ids[0, len(prompt):]]


def python_greedy_without_states(folder: Path, prompt=PROMPT, new_tokens=NEW_TOKENS) -> list[int]:
    """Greedy tokens of a broken runner that starts every call from zero states."""
    from mamba_export.runtime.model import ORTMambaForCausalLM

    model = ORTMambaForCausalLM.from_pretrained(folder)
    tokens, ids = [], prompt
    for _ in range(new_tokens):
        logits = model(np.array([ids], dtype=np.int64)).logits
        tokens.append(int(np.argmax(logits[0, -1])))
        ids = tokens[-1:]
    return tokens


def generate_args(folder, *extra) -> list:
    return ["--model", folder, "--ids", ",".join(map(str, PROMPT)), "--max-new-tokens", NEW_TOKENS, *extra]


def parse_ids(stdout: str) -> list[int]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line of token ids, got {stdout!r}"
    return [int(t) for t in lines[0].split()]


def run_program(command: list, env_overrides: dict | None = None, timeout: int = 120):
    """Run with MAMBA_EXPORT_OPS_LIBRARY unset unless ``env_overrides`` sets it."""
    env = {k: v for k, v in os.environ.items() if k != "MAMBA_EXPORT_OPS_LIBRARY"}
    env.update({k: str(v) for k, v in (env_overrides or {}).items()})
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout, env=env)


def assert_user_error(result, *fragments) -> None:
    """Exit status 2 and exactly one stderr line, 'error: ...', holding every fragment."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
