"""The device buffer that holds the tokens a graph chooses for itself, several steps deep.

An export with ``next_tokens`` (the CUDA default) takes the greedy choice inside its graph,
so a decode step needs nothing from the host. What the host still does between two steps is
read the tokens back (a copy that waits for the GPU, 13 to 25 us at batch 32 on the H200,
``results/gpu/2026-12-02-last-argmax/decode_ab.json``), check for end-of-text and stream
them; ONNX Runtime returns from a CUDA-graph replay only once the GPU has finished, so the
GPU waits through all of it. Reading once every few steps instead of after each takes most
of that out of a token's time.

The ring is ``slots`` rows of (batch, 1) int64 ids in one device buffer, so that one copy
brings all of them back. Decode binding ``s`` reads row ``s`` and writes its choice into row
``s + 1`` (mod ``slots``); the prefill writes row 0, so the ``j``-th token chosen after a
prefill sits in row ``j % slots`` until ``slots`` more steps have run. Each row is bound by
address (``IOBinding.bind_input`` / ``bind_output`` with a pointer), which a CUDA graph
allows because the addresses never change.
"""

from __future__ import annotations

import numpy as np


class TokenRing:
    """``slots`` rows of (batch, 1) int64 token ids in one buffer on ``device`` (io_binding.Device)."""

    def __init__(self, device, slots: int, batch: int):
        self.slots, self.batch, self.device = slots, batch, device
        self.host = np.zeros((slots, batch, 1), np.int64)  # what the buffer held when last read or written
        self.value = device.copy_of(self.host)
        self._base = self.value.data_ptr()
        self._row_bytes = batch * np.dtype(np.int64).itemsize

    def address(self, slot: int) -> int:
        return self._base + (slot % self.slots) * self._row_bytes

    def bind_input(self, binding, name: str, slot: int) -> None:
        binding.bind_input(name, self.device.kind, self.device.index, np.int64, (self.batch, 1), self.address(slot))

    def bind_output(self, binding, name: str, slot: int) -> None:
        binding.bind_output(name, self.device.kind, self.device.index, np.int64, (self.batch, 1), self.address(slot))

    def read(self) -> np.ndarray:
        """Every row, (slots, batch) int64 on the host: one copy."""
        # A copy: on the CPU provider (the tests) numpy() is a view of the buffer the steps write.
        self.host = np.array(self.value.numpy(), dtype=np.int64).reshape(self.slots, self.batch, 1)
        return self.host[:, :, 0]

    def tokens(self, first: int, end: int) -> np.ndarray:
        """The tokens chosen ``first`` to ``end - 1`` steps after the prefill, (end - first, batch):
        at most ``slots`` of them, none overwritten since (the caller's bookkeeping)."""
        if not 0 < end - first <= self.slots:
            raise ValueError(f"a ring of {self.slots} rows holds 1 to {self.slots} unread steps, not {end - first}")
        rows = self.read()
        return rows[[j % self.slots for j in range(first, end)]]

    def write(self, slot: int, tokens: np.ndarray) -> None:
        """Row ``slot`` := tokens ((batch,) int64). The other rows are rewritten from the last read;
        the caller writes only the row the next step reads, and every other row is written by a
        step before any step reads it."""
        self.host[slot % self.slots, :, 0] = tokens
        self.value.update_inplace(self.host)
