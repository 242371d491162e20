"""The parity checks, one function each, all against the float64 oracle.

Every check feeds the export, the float64 oracle and the PyTorch model in the
export dtype the same seeded tokens, and turns the errors into
:class:`CheckResult` rows (``tolerances.py`` has the rule). The checks:

    logits    full-prompt outputs at several lengths (1 and a long one included)
    decode    a prefill then single-token steps carrying the states, vs one full pass
    chunked   a prompt fed in chunks carrying the states, vs one pass
    padding   a left-padded batch vs each row alone (outputs and final states; vs the
              padded batch where an in_proj bias makes padding leak, as in transformers)
    greedy    greedy tokens vs the PyTorch float32 greedy run
    states    final states vs the oracle's
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mamba_export.parity.oracle import Float64Mamba
from mamba_export.parity.report import CheckResult
from mamba_export.parity.tolerances import relative_error, tolerance
from mamba_export.parity.torch_runs import TorchRunner

STATE_KINDS = ("conv_state", "ssm_state")
DECODE_PROMPT = 8
DECODE_STEPS = 32
GREEDY_PROMPT = 8
PADDING_LENGTH = 16
CHUNKED_MIN_LENGTH = 16


@dataclass
class ParityContext:
    """What every check needs: the export, the oracle, the PyTorch runs and the settings."""

    export: object  # ORTMambaForCausalLM or ORTMambaModel
    oracle: Float64Mamba
    torch_dtype: TorchRunner  # the reference in the export dtype (baseline)
    torch_fp32: TorchRunner  # the reference in float32 (greedy tokens)
    dtype: str
    head: str  # "logits" or "last_hidden_state"
    last_only: bool  # the export returns only the last position
    vocab_size: int
    lengths: tuple
    greedy_tokens: int
    seed: int = 0

    def tokens(self, batch: int, length: int, salt: int) -> np.ndarray:
        """Seeded random token ids (batch, length), different per check (salt)."""
        rng = np.random.default_rng([self.seed, salt, batch, length])
        return rng.integers(0, self.vocab_size, (batch, length), dtype=np.int64)

    def oracle_head(self, ids, mask=None) -> np.ndarray:
        return self.oracle(ids, mask)[0].numpy()

    def positions(self, array: np.ndarray) -> np.ndarray:
        """The positions the export returns: all, or the last one."""
        return array[:, -1:] if self.last_only else array

    def compare(self, check: str, output: str, exported, oracle, baseline, detail: str = "") -> CheckResult:
        error = relative_error(exported, oracle)
        base = relative_error(baseline, oracle)
        allowed = tolerance(base, self.dtype)
        return CheckResult(check, output, error, base, allowed, bool(error <= allowed), detail)


def check_logits(ctx: ParityContext) -> list:
    """(a) One full forward per length in ``ctx.lengths``."""
    results = []
    for length in ctx.lengths:
        ids = ctx.tokens(1, length, salt=1)
        exported = _head(ctx.export(ids), ctx)
        oracle = ctx.positions(ctx.oracle_head(ids))
        baseline = ctx.positions(ctx.torch_dtype.full(ids))
        results.append(ctx.compare("logits", f"{ctx.head} L={length}", exported, oracle, baseline))
    return results


def _head(output, ctx: ParityContext) -> np.ndarray:
    return getattr(output, ctx.head)


def check_decode(ctx: ParityContext) -> list:
    """(b) Prefill DECODE_PROMPT tokens, then DECODE_STEPS single-token calls carrying the states."""
    ids = ctx.tokens(2, DECODE_PROMPT + DECODE_STEPS, salt=2)
    output = ctx.export(ids[:, :DECODE_PROMPT])
    steps = []
    for position in range(DECODE_PROMPT, ids.shape[1]):
        output = ctx.export(ids[:, position:position + 1], states=output.states)
        steps.append(_head(output, ctx)[:, -1])
    oracle = ctx.oracle_head(ids)[:, DECODE_PROMPT:]
    baseline = ctx.torch_dtype.decode(ids, DECODE_PROMPT)
    exported = np.stack(steps, axis=1)
    return [ctx.compare("decode", f"{ctx.head} {DECODE_STEPS} steps", exported, oracle, baseline,
                        detail=f"after a {DECODE_PROMPT}-token prefill")]


def chunk_bounds(length: int) -> list:
    """Chunk edges for a prompt of ``length``: a 1-token chunk first, a short one, then halves."""
    edges = sorted({0, 1, min(4, length), length // 2, length})
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def check_chunked(ctx: ParityContext) -> list:
    """(c) The longest check length (at least CHUNKED_MIN_LENGTH) fed in chunks."""
    length = max(max(ctx.lengths), CHUNKED_MIN_LENGTH)
    ids = ctx.tokens(1, length, salt=3)
    states, pieces = None, []
    bounds = chunk_bounds(length)
    for start, stop in bounds:
        output = ctx.export(ids[:, start:stop], states=states)
        states = output.states
        pieces.append(_head(output, ctx))
    exported = pieces[-1] if ctx.last_only else np.concatenate(pieces, axis=1)
    oracle = ctx.positions(ctx.oracle_head(ids))
    baseline = ctx.positions(ctx.torch_dtype.full(ids))
    sizes = "+".join(str(stop - start) for start, stop in bounds)
    return [ctx.compare("chunked", f"{ctx.head} L={length}", exported, oracle, baseline,
                        detail=f"chunks {sizes}")]


def padded_batch(rows: list) -> tuple:
    """Left-pad token rows with id 0: (input_ids, attention_mask), both (len(rows), longest)."""
    longest = max(len(row) for row in rows)
    ids = np.zeros((len(rows), longest), np.int64)
    mask = np.zeros((len(rows), longest), np.int64)
    for index, row in enumerate(rows):
        ids[index, longest - len(row):] = row
        mask[index, longest - len(row):] = 1
    return ids, mask


def _worst(results: list) -> CheckResult:
    """The result closest to (or furthest past) its tolerance, noting how many it stands for."""
    worst = max(results, key=lambda r: r.error / r.tolerance)
    if len(results) == 1:
        return worst
    note = f"worst of {len(results)}"
    return replace(worst, detail=f"{worst.detail}; {note}" if worst.detail else note)


def _padding_references(ctx: ParityContext, rows: list, ids: np.ndarray, mask: np.ndarray) -> list:
    """Per row: (oracle head, oracle states, PyTorch head, PyTorch states), heads over the row's
    real positions only. Each row alone when padding is neutral, else the padded batch's row."""
    if ctx.oracle.padding_is_neutral:
        return [(ctx.oracle_head(row[None]), ctx.oracle(row[None])[1],
                 ctx.torch_dtype.full(row[None]), ctx.torch_dtype.states(row[None])) for row in rows]
    oracle_head, oracle_states = ctx.oracle(ids, mask)
    torch_head, torch_states = ctx.torch_dtype.full(ids, mask), ctx.torch_dtype.states(ids, mask)
    references = []
    for index, row in enumerate(rows):
        one, real = slice(index, index + 1), slice(ids.shape[1] - len(row), None)
        references.append((oracle_head.numpy()[one, real], [(c[one], s[one]) for c, s in oracle_states],
                           torch_head[one, real], [(c[one], s[one]) for c, s in torch_states]))
    return references


def check_padding(ctx: ParityContext) -> list:
    """(d) Rows of different lengths in one left-padded batch vs each row alone.

    Where in_proj has a bias, padding is not neutral (transformers feeds the bias of
    masked positions into the conv too), so each row is compared with its row of the
    oracle run on the padded batch instead, and the baseline is PyTorch on that batch.
    """
    full = ctx.tokens(1, PADDING_LENGTH, salt=4)[0]
    rows = [full, full[3:], full[PADDING_LENGTH // 2:]]
    ids, mask = padded_batch(rows)
    output = ctx.export(ids, attention_mask=mask)
    heads, states = [], []
    references = _padding_references(ctx, rows, ids, mask)
    for index, (row, (oracle_head, oracle_states, torch_head, torch_states)) in enumerate(
            zip(rows, references, strict=True)):
        one = slice(index, index + 1)
        real = slice(-1, None) if ctx.last_only else slice(ids.shape[1] - len(row), None)
        heads.append(ctx.compare("padding", f"{ctx.head} (row {index})", _head(output, ctx)[one, real],
                                 ctx.positions(oracle_head), ctx.positions(torch_head)))
        exported_states = [(c[one], s[one]) for c, s in output.states]
        states += _state_results(ctx, "padding", exported_states, oracle_states, torch_states,
                                 suffix=f" (row {index})")
    results = [_worst(heads)] + [_worst([r for r in states if kind in r.output]) for kind in STATE_KINDS]
    note = "vs rows alone" if ctx.oracle.padding_is_neutral else "vs the padded batch (in_proj bias)"
    return [replace(r, detail=f"{r.detail}; {note}") for r in results]


def _state_results(ctx: ParityContext, check: str, exported, oracle, baseline, suffix: str = "") -> list:
    """One result per layer and state kind."""
    results = []
    for layer, (got, want, base) in enumerate(zip(exported, oracle, baseline, strict=True)):
        for kind, index in (("conv_state", 0), ("ssm_state", 1)):
            results.append(ctx.compare(check, f"present.{layer}.{kind}{suffix}", got[index],
                                       want[index].numpy(), base[index]))
    return results


def check_states(ctx: ParityContext) -> list:
    """(f) Final states after one pass over the longest check length (at least the conv width)."""
    length = max(max(ctx.lengths), ctx.oracle.conv_kernel)
    ids = ctx.tokens(2, length, salt=6)
    results = _state_results(ctx, "states", list(ctx.export(ids).states), ctx.oracle(ids)[1],
                             ctx.torch_dtype.states(ids), suffix=f" L={length}")
    return [_worst([r for r in results if kind in r.output]) for kind in STATE_KINDS]


def _tie_gap(ctx: ParityContext, prefix: np.ndarray, token_a: int, token_b: int) -> tuple:
    """How far apart the oracle puts two candidate next tokens after ``prefix``, relative to
    max|logits|, and the logits tolerance on that prefix (see tolerances.py)."""
    oracle = ctx.oracle_head(prefix)[:, -1]
    gap = abs(oracle[0, token_a] - oracle[0, token_b]) / np.abs(oracle).max()
    baseline = relative_error(ctx.torch_dtype.full(prefix)[:, -1], oracle)
    return float(gap), tolerance(baseline, ctx.dtype)


def check_greedy(ctx: ParityContext) -> list:
    """(e) ``ctx.greedy_tokens`` greedy tokens, token-identical to PyTorch in float32."""
    if ctx.head != "logits":
        return []  # a model without a head does not generate
    ids = ctx.tokens(1, GREEDY_PROMPT, salt=5)
    count = ctx.greedy_tokens
    exported = ctx.export.generate(ids, max_new_tokens=count, eos_token_id=[])[0, GREEDY_PROMPT:]
    expected = ctx.torch_fp32.greedy(ids, count)[0, GREEDY_PROMPT:]
    mismatched = exported != expected
    name = f"{count} new tokens"
    if not mismatched.any():
        return [CheckResult("greedy", name, 0, None, 0, True, "identical", unit="tokens")]
    first = int(np.argmax(mismatched))
    prefix = np.concatenate([ids[0], expected[:first]])[None, :]
    gap, allowed = _tie_gap(ctx, prefix, int(exported[first]), int(expected[first]))
    tie = gap <= allowed
    what = "a near tie" if tie else "a real difference"
    detail = (f"first differs at token {first} (export {exported[first]}, PyTorch {expected[first]}): "
              f"{what}, oracle gap {gap:.2e} {'<=' if tie else '>'} {allowed:.2e}")
    return [CheckResult("greedy", name, int(mismatched.sum()), None, 0, tie, detail, unit="tokens")]


CHECKS = {
    "logits": check_logits,
    "decode": check_decode,
    "chunked": check_chunked,
    "padding": check_padding,
    "greedy": check_greedy,
    "states": check_states,
}
