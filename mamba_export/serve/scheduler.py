"""Continuous batching: one running batch that requests join and leave between decode steps.

A replica owns one :class:`Scheduler` and one model. Each :meth:`Scheduler.step`:

1. drops cancelled requests (waiting ones at once, running ones with the step's leaving rows);
2. reads up to ``prefill_chunk`` prompt tokens of the waiting requests, oldest first, while the
   batch has room (a long prompt takes several steps, so the running rows are never starved;
   short new prompts are read together in one left-padded call); a request whose prompt is read
   joins the batch;
3. chooses one token per running row from its last logits, with the request's own
   :class:`GenerationSettings` and generator (the code ``generate()`` uses), and hands it to the
   request's sink; rows that met EOS or their token limit leave, and joining rows come in;
4. advances every remaining row by one token in a single session call.

Where the batch's states and logits live is the *batch store*'s business (``batch.py``): host
arrays on the CPU provider; on CUDA with IO binding, device buffers at a padded bucket size,
with rows joining and leaving through a gather on the GPU and greedy tokens picked there
(``device_batch.py``), as ``generate()`` keeps its states on the GPU.

A request alone therefore sees exactly what ``generate()`` does for its prompt: the same
choice per step, and a generator seeded per request draws once per step as ``generate()``
does at batch 1. The queue is bounded: beyond ``max_batch + max_waiting`` requests in all,
:meth:`submit` raises ServerBusyError.
The scheduler knows nothing about HTTP or Ray; it runs in a thread (:meth:`start`) or is
stepped by hand (tests, scripts/load_test.py).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from mamba_export.errors import ServerBusyError
from mamba_export.runtime.generation import GenerationSettings
from mamba_export.serve.batch import batch_store

log = logging.getLogger(__name__)

# Finish reasons, as the OpenAI API names them (plus "cancelled" and "error").
STOP, LENGTH, CANCELLED, ERROR = "stop", "length", "cancelled", "error"
METRICS_WINDOW_S = 10.0


@dataclass(frozen=True)
class Event:
    """What a request's sink receives: a token, or the end (``finish_reason`` set, ``message`` on error)."""

    token: int | None = None
    finish_reason: str | None = None
    message: str | None = None


@dataclass(eq=False)
class _Request:
    id: int
    prompt: np.ndarray  # (length,) int64
    settings: GenerationSettings
    sink: object  # callable(Event), called from the scheduler's thread
    rng: np.random.Generator = None
    read: int = 0  # prompt tokens prefilled so far
    states: object = None  # the batch store's handle of its states, while prefilling and joining
    logits: np.ndarray | None = None  # (1, vocab) float32 after the prompt
    generated: int = 0
    next_token: int = 0  # chosen at this step, fed at the next decode call
    cancelled: bool = False
    done: bool = False
    submitted: float = field(default_factory=time.monotonic)

    def deliver(self, event: Event) -> None:
        """Hand ``event`` to the sink. A sink that raises (its consumer is gone: a closed event loop,
        a dropped connection) cancels its own request; it never stops the scheduler's thread."""
        try:
            self.sink(event)
        except Exception as error:
            if not self.cancelled:
                log.warning("request %d: its sink failed (%s: %s); the request is cancelled",
                            self.id, type(error).__name__, error)
            self.cancelled = True

    def finish(self, reason: str, message: str | None = None) -> None:
        if not self.done:
            self.done = True
            self.deliver(Event(finish_reason=reason, message=message))


class Scheduler:
    """Continuous batching over ``model`` (an ORTMambaForCausalLM) with at most ``max_batch`` rows.

    ``store``: the batch store (``batch.py``); by default the one for the model's provider.
    """

    def __init__(self, model, max_batch: int = 32, max_waiting: int = 256, prefill_chunk: int = 256,
                 store=None):
        self.model = model
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.prefill_chunk = prefill_chunk
        self.batch = batch_store(model, max_batch) if store is None else store
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self._waiting: deque = deque()
        self._by_id: dict = {}
        self._thread = None
        self._stopping = False
        self._history: deque = deque()  # (time, tokens, rows) per decode step, for metrics
        self.counts = {"tokens": 0, "finished": 0, "cancelled": 0, "rejected": 0, "errors": 0, "steps": 0}

    @property
    def _rows(self) -> list:
        """The running requests, in the order of the batch axis."""
        return self.batch.rows

    # -- requests ---------------------------------------------------------------------------------

    def submit(self, prompt_ids, settings: GenerationSettings, sink) -> int:
        """Queue a prompt ((length,) token ids, checked by the caller); returns the request id.

        ``sink(Event)`` receives each token and then one final event, from the scheduler's thread.
        Raises ServerBusyError when the batch is full and ``max_waiting`` requests already wait.
        """
        request = _Request(next(self._ids), np.asarray(prompt_ids, dtype=np.int64).reshape(-1), settings, sink,
                           rng=np.random.default_rng(settings.seed))
        with self._cond:
            if self._stopping:
                raise ServerBusyError("the server is shutting down")
            # Waiting requests beyond the batch's free rows count against max_waiting.
            if len(self._rows) + len(self._waiting) >= self.max_batch + self.max_waiting:
                self.counts["rejected"] += 1
                raise ServerBusyError(f"server busy: {len(self._rows)} requests running and {len(self._waiting)} "
                                      f"waiting (the limit); retry later")
            if settings.max_new_tokens == 0:
                request.finish(LENGTH)
                return request.id
            self._waiting.append(request)
            self._by_id[request.id] = request
            self._cond.notify()
        return request.id

    def cancel(self, request_id: int) -> None:
        """Stop a request (client gone, stop text seen); it leaves the batch before the next step."""
        with self._cond:
            request = self._by_id.get(request_id)
            if request is not None:
                request.cancelled = True
                self._cond.notify()

    # -- one step ---------------------------------------------------------------------------------

    def step(self) -> bool:
        """Run one scheduler step; returns whether there was anything to do."""
        self._drop_cancelled_waiting()
        running = list(self._rows)
        cancelled = {i for i, r in enumerate(running) if r.cancelled}
        joined = self._prefill(len(running) - len(cancelled))
        if not running and not joined:
            return bool(self._waiting)
        for i in cancelled:
            self._end(running[i], CANCELLED)
        live = [r for i, r in enumerate(running) if i not in cancelled]
        candidates = live + joined
        tokens = self._choose(running, cancelled) + [r.settings.choose(r.logits, r.rng)[0] for r in joined]
        finished = self._emit(candidates, tokens) if candidates else set()
        leaving = cancelled | {i for i, r in enumerate(running) if r in finished}
        self._advance(leaving, [r for r in joined if r not in finished])
        return True

    def _choose(self, running: list, cancelled: set) -> list:
        """The next token of each running row that is not cancelled: greedy rows from the store's
        argmax, sampling rows from the last logits with their own settings and generator."""
        live = [(i, r) for i, r in enumerate(running) if i not in cancelled]
        greedy = self.batch.greedy_tokens() if any(not r.settings.do_sample for _, r in live) else None
        logits = self.batch.last_logits() if any(r.settings.do_sample for _, r in live) else None
        return [r.settings.choose(logits[i:i + 1], r.rng)[0] if r.settings.do_sample else greedy[i]
                for i, r in live]

    def _advance(self, leaving: set, joining: list) -> None:
        """Rows ``leaving`` go, ``joining`` come in, and every row advances by its chosen token."""
        try:
            self.batch.rebatch(leaving, joining)
            if self._rows:
                self.batch.decode(np.array([r.next_token for r in self._rows], dtype=np.int64))
        except Exception as error:
            log.exception("decode step failed")
            for request in set(self._rows) | set(joining):
                self._end(request, ERROR, f"decode step failed: {error}")
            self.batch.clear()

    def _drop_cancelled_waiting(self) -> None:
        with self._cond:
            gone = [r for r in self._waiting if r.cancelled]
            for request in gone:
                self._waiting.remove(request)
        for request in gone:
            self._end(request, CANCELLED)

    def _prefill(self, running: int) -> list:
        """Read prompt tokens of waiting requests within the step's budget while ``running`` rows
        (those not cancelled) and the ready ones leave room; returns those now ready.

        A prompt already partly read goes on alone (its states carry on). New prompts that fit the
        budget together are read in one call, left-padded to the longest with the attention mask,
        as ``generate()`` reads a batch; the budget counts the padded tokens."""
        budget, ready = self.prefill_chunk, []
        while budget > 0 and running + len(ready) < self.max_batch:
            group = self._next_group(budget, self.max_batch - running - len(ready))
            if not group:
                break
            budget -= self._read(group, budget, ready)
        return ready

    def _next_group(self, budget: int, room: int) -> list:
        """The waiting requests to read together: one partly read prompt, or new prompts in order."""
        with self._cond:
            if not self._waiting:
                return []
            first = self._waiting[0]
            if first.read > 0:
                return [first]
            group, longest = [], 0
            for request in itertools.islice(self._waiting, room):
                length = min(len(request.prompt), budget)
                if request.read > 0 or (group and max(longest, length) * (len(group) + 1) > budget):
                    break
                group.append(request)
                longest = max(longest, length)
            return group

    def _read(self, group: list, budget: int, ready: list) -> int:
        """One call over the next chunk of each request of ``group``; returns the (padded) tokens read."""
        if len(group) == 1:
            request = group[0]
            take = min(budget, len(request.prompt) - request.read)
            ids, mask = request.prompt[None, request.read:request.read + take], None
        else:  # new prompts, each whole (the group was sized to the budget)
            take = max(len(r.prompt) for r in group)
            ids = np.zeros((len(group), take), np.int64)
            mask = np.zeros((len(group), take), np.int64)
            for row, request in enumerate(group):
                ids[row, take - len(request.prompt):] = request.prompt
                mask[row, take - len(request.prompt):] = 1
        try:
            logits, handles = self.batch.prefill(ids, mask, group[0].states if len(group) == 1 else None)
        except Exception as error:  # a failed read must not stop the other requests
            log.exception("prefill failed")
            with self._cond:
                for request in group:
                    self._waiting.remove(request)
            for request in group:
                self._end(request, ERROR, f"prefill failed: {error}")
            return take * len(group)
        for row, request in enumerate(group):
            request.states = handles[row]
            request.read = request.read + take if len(group) == 1 else len(request.prompt)
            if request.read == len(request.prompt):
                request.logits = logits[row:row + 1]
                with self._cond:
                    self._waiting.remove(request)
                ready.append(request)
        return take * len(group)

    def _emit(self, requests: list, tokens: list) -> set:
        """Hand each request its token; returns the requests that finished."""
        finished = set()
        for request, token in zip(requests, tokens, strict=True):
            request.generated += 1
            request.next_token = int(token)
            request.deliver(Event(token=int(token)))
            if int(token) in request.settings.eos_token_ids:
                self._end(request, STOP)
                finished.add(request)
            elif request.generated >= request.settings.max_new_tokens:
                self._end(request, LENGTH)
                finished.add(request)
        self._record(len(tokens))
        return finished

    def _end(self, request: _Request, reason: str, message: str | None = None) -> None:
        key = {CANCELLED: "cancelled", ERROR: "errors"}.get(reason, "finished")
        with self._cond:
            self._by_id.pop(request.id, None)
            self.counts[key] += 1
        request.finish(reason, message)

    # -- metrics ----------------------------------------------------------------------------------

    def _record(self, rows: int) -> None:
        now = time.monotonic()
        with self._cond:
            self.counts["tokens"] += rows
            self.counts["steps"] += 1
            self._history.append((now, rows))
            while self._history and self._history[0][0] < now - METRICS_WINDOW_S:
                self._history.popleft()

    def metrics(self) -> dict:
        """Running and waiting requests, tokens/s and mean batch occupancy over the last 10 s, counters."""
        now = time.monotonic()
        with self._cond:
            recent = [rows for t, rows in self._history if t >= now - METRICS_WINDOW_S]
            span = (now - self._history[0][0]) if self._history else 0.0
            return {
                "running": len(self._rows),
                "waiting": len(self._waiting),
                "max_batch": self.max_batch,
                "tokens_per_s": sum(recent) / max(span, 1.0) if recent else 0.0,
                "batch_occupancy": (sum(recent) / len(recent) / self.max_batch) if recent else 0.0,
                "window_s": METRICS_WINDOW_S,
                **{f"{name}_total": value for name, value in self.counts.items()},
            }

    # -- the loop ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Step in a background thread until :meth:`stop`; idle steps wait for a request."""
        self._thread = threading.Thread(target=self._loop, name="mamba-export-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._waiting and not self._rows:
                    self._cond.wait()
                if self._stopping:
                    break
            try:
                self.step()
            except Exception as error:  # a bug or a broken store must not leave requests waiting forever
                log.exception("scheduler step failed")
                self._fail_all(f"scheduler step failed: {type(error).__name__}: {error}")

    def _fail_all(self, message: str) -> None:
        """End every waiting and running request with an error and empty the batch; the loop goes on."""
        with self._cond:
            pending = list(self._waiting) + list(self._rows)
            self._waiting.clear()
        try:
            self.batch.clear()
        except Exception:
            log.exception("clearing the batch failed")
        for request in pending:
            self._end(request, ERROR, message)

    def stop(self) -> None:
        """Stop the loop; requests still waiting or running end with an error event."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        self._fail_all("the server is shutting down")

    def run_until_idle(self, max_steps: int = 1_000_000) -> int:
        """Step until nothing is waiting or running (for callers without the thread); returns the steps."""
        for count in range(max_steps):
            if not self._waiting and not self._rows:
                return count
            self.step()
        raise RuntimeError(f"the scheduler was still busy after {max_steps} steps")
