"""The parity checks, one function each, all against the float64 oracle.

Every check feeds the export, the float64 oracle and the PyTorch model in the
export dtype the same seeded tokens, and turns the errors into
:class:`CheckResult` rows (``tolerances.py`` has the rule). The checks:

    logits    full-prompt outputs at several lengths (1 and a long one included)
    decode    a prefill then single-token steps carrying the states, vs one full pass
    chunked   a prompt fed in chunks carrying the states, vs one pass
    padding   each row of a left-padded batch vs the oracle on the row alone (outputs and
              final states; vs the oracle on the padded batch where an in_proj bias makes
              padding leak, as in transformers), baseline PyTorch on the same padded batch
    greedy    every greedy token vs the oracle's choice on the same prefix (near ties allowed)
    states    final states vs the oracle's

States are judged per kind (conv_state, ssm_state), all layers' states of that
kind as one tensor, as the logits are one tensor over all positions. Judged per
layer, a layer whose states are small makes a ratio of two tiny numbers, and 72 of
them on mamba-130m (24 layers, 3 padded rows) cross any fixed factor by chance.
A wrong state is wrong by orders of magnitude; the mutation tests show that the
checks still catch every state defect.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mamba_export.parity.oracle import Float64Mamba
from mamba_export.parity.report import CheckResult
from mamba_export.parity.tolerances import (
    CEILING,
    FAILED,
    GREEDY_MISMATCHES_ALLOWED,
    INCONCLUSIVE,
    PASSED,
    conclusive,
    judge,
    relative_error,
    tolerance,
)
from mamba_export.parity.torch_runs import BaselineUnavailable, TorchRunner

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
        return self.judged(check, output, relative_error(exported, oracle), relative_error(baseline, oracle),
                           detail)

    def judged(self, check: str, output: str, error: float, baseline: float, detail: str = "") -> CheckResult:
        status, allowed = judge(error, baseline, self.dtype)
        return CheckResult(check, output, error, baseline, allowed, status, detail)


def _no_baseline(check: str, output: str, why: BaselineUnavailable) -> CheckResult:
    """A check whose PyTorch baseline could not run fails: it could not fail otherwise."""
    return CheckResult(check, output, float("inf"), None, 0.0, FAILED, f"no PyTorch baseline: {why}")


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
    name = f"{ctx.head} {DECODE_STEPS} steps"
    try:
        baseline = ctx.torch_dtype.decode(ids, DECODE_PROMPT)
    except BaselineUnavailable as why:
        return [_no_baseline("decode", name, why)]
    exported = np.stack(steps, axis=1)
    return [ctx.compare("decode", name, exported, oracle, baseline, detail=f"after a {DECODE_PROMPT}-token prefill")]


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
    order = {FAILED: 2, INCONCLUSIVE: 1, PASSED: 0}
    worst = max(results, key=lambda r: (order[r.status], r.error / r.tolerance if r.tolerance else r.error))
    if len(results) == 1:
        return worst
    note = f"worst of {len(results)}"
    return replace(worst, detail=f"{worst.detail}; {note}" if worst.detail else note)


def _rows(states, index: int) -> list:
    one = slice(index, index + 1)
    return [(conv[one], ssm[one]) for conv, ssm in states]


def _padding_references(ctx: ParityContext, rows: list, ids: np.ndarray, mask: np.ndarray) -> list:
    """Per row: (oracle head, oracle states, PyTorch head, PyTorch states), heads over the row's
    real positions only. The oracle runs each row alone when padding is neutral, else the padded
    batch; PyTorch (the baseline) runs the padded batch, as the export does."""
    torch_head, torch_states = ctx.torch_dtype.full(ids, mask), ctx.torch_dtype.states(ids, mask)
    if not ctx.oracle.padding_is_neutral:
        oracle_head, oracle_states = ctx.oracle(ids, mask)
        oracle_states = [(c.numpy(), s.numpy()) for c, s in oracle_states]
    references = []
    for index, row in enumerate(rows):
        real = slice(ids.shape[1] - len(row), None)
        if ctx.oracle.padding_is_neutral:
            head, states = ctx.oracle(row[None])
            oracle = (head.numpy(), [(c.numpy(), s.numpy()) for c, s in states])
        else:
            oracle = (oracle_head.numpy()[index:index + 1, real], _rows(oracle_states, index))
        references.append((*oracle, torch_head[index:index + 1, real], _rows(torch_states, index)))
    return references


def check_padding(ctx: ParityContext) -> list:
    """(d) Each row of a left-padded batch of rows of different lengths, against the oracle.

    The oracle runs each row alone, so padding must not change a row's outputs or final
    states. Where in_proj has a bias, padding is not neutral (transformers feeds the bias
    of masked positions into the conv too), so the oracle runs the padded batch instead.
    The baseline is PyTorch on the same padded batch: its rounding depends on the batch
    as ONNX Runtime's does (GEMM blocking), which a row run alone does not show.
    """
    full = ctx.tokens(1, PADDING_LENGTH, salt=4)[0]
    rows = [full, full[3:], full[PADDING_LENGTH // 2:]]
    ids, mask = padded_batch(rows)
    output = ctx.export(ids, attention_mask=mask)
    try:
        references = _padding_references(ctx, rows, ids, mask)
    except BaselineUnavailable as why:
        return [_no_baseline("padding", f"{ctx.head} and states", why)]
    heads, states = [], []
    for index, (row, (oracle_head, oracle_states, torch_head, torch_states)) in enumerate(
            zip(rows, references, strict=True)):
        one = slice(index, index + 1)
        real = slice(-1, None) if ctx.last_only else slice(ids.shape[1] - len(row), None)
        suffix = f" (row {index}, {len(row)} tokens)"
        heads.append(ctx.compare("padding", f"{ctx.head}{suffix}", _head(output, ctx)[one, real],
                                 ctx.positions(oracle_head), ctx.positions(torch_head)))
        states += _state_results(ctx, "padding", _rows(output.states, index), oracle_states, torch_states,
                                 suffix=suffix)
    results = [_worst(heads)] + [_worst([r for r in states if kind in r.output]) for kind in STATE_KINDS]
    note = "vs each row alone" if ctx.oracle.padding_is_neutral else "vs the padded batch (in_proj bias)"
    return [replace(r, detail=f"{r.detail}; {note}") for r in results]


def _state_results(ctx: ParityContext, check: str, exported, oracle, baseline, suffix: str = "") -> list:
    """One result per state kind, all layers' states of that kind compared as one tensor
    (see the module docstring), naming the layer with the largest difference."""
    results = []
    for kind, index in (("conv_state", 0), ("ssm_state", 1)):
        want = [np.asarray(layer[index], np.float64) for layer in oracle]
        got = [np.asarray(layer[index], np.float64) for layer in exported]
        base = [np.asarray(layer[index], np.float64) for layer in baseline]
        layer = int(np.argmax([np.abs(g - w).max() for g, w in zip(got, want, strict=True)]))
        results.append(ctx.judged(check, f"present.*.{kind}{suffix}", relative_error(_flat(got), _flat(want)),
                                  relative_error(_flat(base), _flat(want)),
                                  detail=f"{len(want)} layers as one; largest difference in layer {layer}"))
    return results


def _flat(arrays: list) -> np.ndarray:
    return np.concatenate([array.ravel() for array in arrays])


def check_states(ctx: ParityContext) -> list:
    """(f) Final states after one pass over the longest check length (at least the conv width)."""
    length = max(max(ctx.lengths), ctx.oracle.conv_kernel)
    ids = ctx.tokens(2, length, salt=6)
    try:
        baseline = ctx.torch_dtype.states(ids)
    except BaselineUnavailable as why:
        return [_no_baseline("states", f"present.*.{kind} L={length}", why) for kind in STATE_KINDS]
    oracle = [(c.numpy(), s.numpy()) for c, s in ctx.oracle(ids)[1]]
    return _state_results(ctx, "states", list(ctx.export(ids).states), oracle, baseline, suffix=f" L={length}")


@dataclass(frozen=True)
class _Step:
    """One generated token judged against the oracle on the same prefix."""

    index: int
    chosen: int
    best: int
    margin: float  # oracle logit of best minus chosen, over max|logits| at that step
    allowed: float  # the logits tolerance at that step
    conclusive: bool

    @property
    def near_tie(self) -> bool:
        return self.margin <= self.allowed

    def describe(self) -> str:
        kind = "near tie" if self.near_tie else "real difference"
        sign = "<=" if self.near_tie else ">"
        return (f"token {self.index}: export {self.chosen}, oracle {self.best}, margin {self.margin:.2e} "
                f"{sign} {self.allowed:.2e} ({kind})")


def _greedy_steps(ctx: ParityContext, sequence: np.ndarray, prompt: int) -> tuple:
    """(mismatched steps, PyTorch's own count of non-argmax choices) of a greedy ``sequence``:
    one oracle pass and one PyTorch pass over it give the logits that chose every token."""
    context = sequence[:, :-1]
    oracle = ctx.oracle_head(context)[0, prompt - 1:]
    baseline = ctx.torch_dtype.full(context)[0, prompt - 1:]
    chosen = sequence[0, prompt:]
    steps, torch_misses = [], 0
    for index, (row, base, token) in enumerate(zip(oracle, baseline, chosen, strict=True)):
        best = int(np.argmax(row))
        torch_misses += int(row[int(np.argmax(base))] < row[best])
        margin = float((row[best] - row[int(token)]) / np.abs(row).max())
        if margin > 0:
            error = relative_error(base, row)
            steps.append(_Step(index, int(token), best, margin, tolerance(error, ctx.dtype),
                               conclusive(error, ctx.dtype)))
    return steps, torch_misses


def greedy_status(steps: list, torch_misses: int) -> str:
    """The verdict on a greedy run's mismatched ``steps`` (``_Step``s).

    A real difference (a margin above the logits tolerance) fails. Near ties are allowed
    up to ``near_ties_allowed``: ``GREEDY_MISMATCHES_ALLOWED`` plus the number of times
    PyTorch in the export dtype itself leaves the oracle's choice on the same prefixes (a
    bfloat16 export of a trained model meets a few near ties that PyTorch in bfloat16 meets
    too). More fail, unless PyTorch misses more than ``GREEDY_MISMATCHES_ALLOWED`` (or a
    tolerance is above the dtype's ceiling): then so many near ties are what the dtype does
    to these weights, and the check cannot tell a broken export from a right one (random
    weights in float16 are the usual case), so it is inconclusive.
    """
    if any(not step.near_tie for step in steps):
        return FAILED
    conclusive_steps = all(step.conclusive for step in steps)
    if len(steps) > near_ties_allowed(torch_misses):
        return INCONCLUSIVE if torch_misses > GREEDY_MISMATCHES_ALLOWED or not conclusive_steps else FAILED
    return PASSED if conclusive_steps else INCONCLUSIVE


def near_ties_allowed(torch_misses: int) -> int:
    """Near ties a greedy run may have when PyTorch in the export dtype misses ``torch_misses``."""
    return GREEDY_MISMATCHES_ALLOWED + torch_misses


def check_greedy(ctx: ParityContext) -> list:
    """(e) ``ctx.greedy_tokens`` greedy tokens from the export, every one judged.

    Each token must be the oracle's argmax given the tokens before it (the export's own
    prefix), except near ties (see ``tolerances.GREEDY_MISMATCHES_ALLOWED``). Error: the
    number of mismatched tokens; baseline: how many PyTorch in the export dtype would
    get wrong on the same prefixes.
    """
    if ctx.head != "logits":
        return []  # a model without a head does not generate
    ids = ctx.tokens(1, GREEDY_PROMPT, salt=5)
    count = ctx.greedy_tokens
    name = f"{count} new tokens"
    sequence = np.asarray(ctx.export.generate(ids, max_new_tokens=count, eos_token_id=[]))[:1]
    if sequence.shape[1] != GREEDY_PROMPT + count:
        return [CheckResult("greedy", name, count, None, GREEDY_MISMATCHES_ALLOWED, FAILED,
                            f"generate returned {sequence.shape[1] - GREEDY_PROMPT} new tokens", unit="tokens")]
    steps, torch_misses = _greedy_steps(ctx, sequence, GREEDY_PROMPT)
    real = [step for step in steps if not step.near_tie]
    status = greedy_status(steps, torch_misses)
    if not steps:
        detail = f"all {count} are the oracle's choice"
    else:
        shown = (real or steps)[:4]
        more = f"; {len(steps) - len(shown)} more" if len(steps) > len(shown) else ""
        detail = (f"{len(steps) - len(real)} near ties (at most {near_ties_allowed(torch_misses)}), "
                  f"{len(real)} real: "
                  + "; ".join(step.describe() for step in shown) + more)
        if status == INCONCLUSIVE:
            detail += (f"; PyTorch in {ctx.dtype} leaves the oracle's choice at {torch_misses} of {count} tokens"
                       if torch_misses > GREEDY_MISMATCHES_ALLOWED else
                       f"; a tolerance is above the {ctx.dtype} ceiling {CEILING[ctx.dtype]:.2g}")
    return [CheckResult("greedy", name, len(steps), torch_misses, near_ties_allowed(torch_misses), status, detail,
                        unit="tokens")]


CHECKS = {
    "logits": check_logits,
    "decode": check_decode,
    "chunked": check_chunked,
    "padding": check_padding,
    "greedy": check_greedy,
    "states": check_states,
}
