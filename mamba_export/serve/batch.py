"""Where the scheduler's running batch lives: its rows, their states and the last logits.

The scheduler (``scheduler.py``) decides who runs; a *batch store* holds what the rows
carry between steps and runs the model on it. Every store offers the same methods:

- ``rows``: the running requests, in the order of the batch axis;
- ``prefill(ids, mask, carried)``: read prompt tokens of a group of new rows (``carried``: the
  states handle of a prompt's previous chunk, or None for fresh prompts); returns the last
  position's logits, (group, vocab) float32 on the host, and one states handle per row;
- ``greedy_tokens()`` / ``last_logits()``: each row's argmax, (rows,) int64, and its last logits,
  (rows, vocab) float32, both on the host, after the last decode step;
- ``rebatch(leaving, joining)``: rows ``leaving`` (indices) leave, requests ``joining`` (whose
  ``.states`` hold the handle from ``prefill``) join;
- ``decode(tokens)``: one token per row, (rows,) int64;
- ``clear()``: forget the batch.

:class:`HostBatch` (here) keeps NumPy states and calls the model as ``model(ids, mask, states)``,
which suits the CPU provider. On CUDA with IO binding the states stay on the GPU
(``device_batch.py``); :func:`batch_store` picks by the model's options.
"""

from __future__ import annotations

import numpy as np

from mamba_export.runtime import sampling
from mamba_export.runtime.states import MambaStates


def batch_store(model, max_batch: int):
    """The store for ``model``: on the device where generate() decodes there, else on the host."""
    from mamba_export.runtime.generation import keeps_states_on_device

    options = getattr(model, "options", None)  # a stand-in model (tests) is called on the host
    if options is not None and keeps_states_on_device(options):
        from mamba_export.serve.device_batch import DeviceBatch

        return DeviceBatch.for_model(model, max_batch)
    return HostBatch(model)


def last_position(logits) -> np.ndarray:
    """(batch, sequence, vocab) logits -> (batch, vocab) float32 of the last position."""
    return np.asarray(logits[:, -1, :], dtype=np.float32)


class HostBatch:
    """The running batch as host arrays, advanced through ``model(ids, mask, states)``."""

    def __init__(self, model):
        self.model = model
        self.rows: list = []
        self._states: MambaStates | None = None
        self._logits: np.ndarray | None = None  # (rows, vocab) float32 after the last decode step

    def prefill(self, ids: np.ndarray, mask, carried) -> tuple:
        output = self.model(ids, mask, carried)
        if ids.shape[0] == 1:
            handles = [output.states]
        else:
            handles = [output.states.select(slice(row, row + 1)) for row in range(ids.shape[0])]
        return last_position(output.logits), handles

    def greedy_tokens(self) -> np.ndarray:
        return sampling.greedy(self._logits)

    def last_logits(self) -> np.ndarray:
        return self._logits

    def rebatch(self, leaving: set, joining: list) -> None:
        """Joining rows are written into the leaving rows' places, the last rows move into the
        remaining holes, and the batch becomes a prefix of its arrays, so a step where as many
        rows join as leave copies only those rows' states, never the whole batch. Only a batch
        that grows is concatenated. The logits are stale until the next :meth:`decode`."""
        rows, holes, incoming = list(self.rows), sorted(leaving), list(joining)
        while holes and incoming:
            index, request = holes.pop(0), incoming.pop(0)
            self._write_row(index, request.states, 0)
            rows[index] = request
        size, holes = len(rows), set(holes)
        while holes:
            last = size - 1
            if last in holes:
                holes.discard(last)
            else:
                index = min(holes)
                holes.discard(index)
                self._write_row(index, self._states, last)
                rows[index] = rows[last]
            size -= 1
        rows = rows[:size]
        states = self._states.select(slice(0, size)) if size else None
        if incoming:
            states = MambaStates.concatenate(([states] if size else []) + [r.states for r in incoming])
            rows += incoming
        self.rows, self._states, self._logits = rows, states, None
        for request in joining:
            request.states = None

    def _write_row(self, index: int, states: MambaStates, source: int) -> None:
        """Row ``index`` of the batch := row ``source`` of ``states``."""
        for target, given in zip(self._states.conv + self._states.ssm, states.conv + states.ssm, strict=True):
            target[index] = given[source]

    def decode(self, tokens: np.ndarray) -> None:
        ids = tokens.reshape(-1, 1)
        output = self.model(ids, np.ones_like(ids), self._states)
        self._states, self._logits = output.states, last_position(output.logits)

    def clear(self) -> None:
        self.rows, self._states, self._logits = [], None, None
