"""The scheduler's running batch with its states on the device (CUDA with IO binding).

Carried as host arrays, every decode step would copy each layer's conv and ssm states to the
GPU and back (for mamba-130m at batch 128, about 320 MB each way per token). This store keeps
them where ``generate()`` keeps its own (``runtime/io_binding.py``):

- the batch runs at a padded *bucket* size (powers of two up to ``max_batch``, and ``max_batch``),
  so at most about log2(max_batch) + 1 batch sizes are bound and captured; padding rows get token
  0 and their outputs are ignored;
- each bucket has io_binding's buffers (two state sets A/B, ids, mask, logits, two decode
  bindings, a CUDA graph each), kept in ``model.batch_cache`` with graph ids from
  ``FIRST_GRAPH_ID`` up, apart from generate()'s (ONNX Runtime numbers graphs per session);
  each decode step reads one set and writes the other;
- a prompt is read from zeros (gathered on the device) into fresh device states; only its last
  position's logits come to the host (the scheduler chooses a joining row's first token there,
  with the request's settings);
- rows join and leave through the row gather of ``runtime/row_gather.py``: the current set and
  the joining rows' states are gathered, in the new batch's order, into the other set of the
  same bucket or a set of the new bucket, never into the set read;
- greedy tokens come from the argmax on the device ((bucket,) int64 to the host): the graph's own
  ``next_tokens`` of the last decode step where the export has them (CUDA exports of language
  models by default), else the token head's; sampling rows need the last logits on the host
  (``token_head.last_logits``).

Tests run all of this on CPU OrtValues (``Device("cpu")``).
"""

from __future__ import annotations

import numpy as np

from mamba_export import graph_io
from mamba_export.runtime.inputs import check_attention_mask, check_input_ids, pad_left_to_bucket
from mamba_export.runtime.io_binding import Device, DeviceDecoder, bind_states, state_set
from mamba_export.runtime.row_gather import RowGather
from mamba_export.runtime.session import NO_GRAPH, providers_for, run_options

# generate()'s graph ids count up from 1 (a batch size's decode bindings each: 2 to the ring's rows); the
# scheduler's start far above them.
FIRST_GRAPH_ID = 1_000_001


def bucket_sizes(max_batch: int) -> list:
    """The padded batch sizes: powers of two below ``max_batch``, then ``max_batch``."""
    sizes, size = [], 1
    while size < max_batch:
        sizes.append(size)
        size *= 2
    return sizes + [max_batch]


class DeviceBatch:
    """The running batch in device buffers (see the module docstring); the batch store interface of ``batch.py``."""

    def __init__(self, model, max_batch: int, device: Device, use_graph: bool | None = None,
                 cache: dict | None = None, prefill_bucket: int | None = None):
        self.model = model
        self.device = device
        self.buckets = bucket_sizes(max_batch)
        cache = model.batch_cache if cache is None else cache
        # A prompt read from zero states is left-padded as generate() pads it (batch x length a
        # multiple of the decoder's bucket, RuntimeOptions.prefill_bucket): shapes seen in the warm-up.
        # Rows join and leave between steps, so the ids a decode step reads are the scheduler's, written
        # each step; an export's next_tokens go to a spare buffer, read by greedy_tokens.
        self._decoder = DeviceDecoder(model, cache, device, use_graph, first_graph_id=FIRST_GRAPH_ID, zeros=False,
                                      bucket=prefill_bucket, in_graph_tokens=False)
        self._gather = RowGather(model.state_spec, providers_for(model.options, head=True))
        self._zero_row = state_set(model.state_spec, 1, device, zeros=True)  # what a fresh prompt starts from
        self.rows: list = []
        self.bucket = None  # the bucket size the batch runs at, None while empty
        self._set = 0  # which of the bucket's two state sets holds the states

    @classmethod
    def for_model(cls, model, max_batch: int) -> DeviceBatch:
        from mamba_export.runtime.session import cuda_device_id

        return cls(model, max_batch, Device("cuda", cuda_device_id(model.options)))

    def bucket_for(self, rows: int) -> int:
        return next(size for size in self.buckets if size >= rows)

    @property
    def _buffers(self):
        return self._decoder.buffers_for(self.bucket)

    # -- prompts ----------------------------------------------------------------------------------

    def prefill(self, ids: np.ndarray, mask, carried) -> tuple:
        """Read ``ids`` from zero states (or a previous chunk's, ``carried``) into fresh device states."""
        model, runner = self.model, self.model.runner
        ids = check_input_ids(ids, int(model.info["vocab_size"]))
        mask = check_attention_mask(mask, ids.shape)
        batch = ids.shape[0]
        if carried is None:
            # Masked padding keeps zero states at zero (carried states it would change); the zero
            # row is repeated on the device, not copied from the host.
            ids, mask = pad_left_to_bucket(ids, mask, self._decoder.bucket)
            past = state_set(model.state_spec, batch, self.device)
            self._gather.gather([self._zero_row], np.zeros(batch, np.int64), past)
        else:
            past, row = carried
            if batch != 1 or row != 0:
                raise ValueError("only a prompt read alone goes on in chunks")
        length = ids.shape[1]
        present = state_set(model.state_spec, batch, self.device)
        logits = self.device.empty((batch, runner.head_positions(length), runner.head_width), runner.head_dtype)
        binding = model.session.io_binding()
        binding.bind_cpu_input(graph_io.INPUT_IDS, ids)
        binding.bind_cpu_input(graph_io.ATTENTION_MASK, mask)
        binding.bind_ortvalue_output(runner.head_output, logits)
        bind_states(binding, past, present)
        model.session.run_with_iobinding(binding, run_options(NO_GRAPH) if self._decoder.use_graph else None)
        return model.token_head.last_logits(logits), [(present, row) for row in range(batch)]

    # -- tokens -----------------------------------------------------------------------------------

    def greedy_tokens(self) -> np.ndarray:
        """Each row's argmax after the last decode step: the graph's own (an export with next_tokens, no
        second session run), else the token head's, taken on the device into the next step's ids buffer."""
        buffers, head = self._buffers, self.model.token_head
        if buffers.spare is not None:
            self._decoder.chosen = None  # the ids buffer does not hold them: decode() copies them in
            return buffers.spare.numpy().reshape(-1)[:len(self.rows)].copy()
        ids = buffers.ids[0]  # the decoder's one ids buffer (read by both bindings)
        if buffers.head_binding is None:
            buffers.head_binding = head.greedy_binding(buffers.logits, ids)
        head.run(buffers.head_binding)
        self._decoder.chosen = ids.numpy().reshape(-1)
        return self._decoder.chosen[:len(self.rows)].copy()

    def last_logits(self) -> np.ndarray:
        return self.model.token_head.last_logits(self._buffers.logits)[:len(self.rows)]

    # -- the batch --------------------------------------------------------------------------------

    def rebatch(self, leaving: set, joining: list) -> None:
        """Kept rows in their order, then the joining rows, gathered into the new bucket's buffers."""
        if not leaving and not joining:
            return
        kept = [i for i in range(len(self.rows)) if i not in leaving]
        rows = [self.rows[i] for i in kept] + list(joining)
        if not rows:
            self.clear()
            return
        parts, index = [], list(kept)
        if kept:
            parts.append(self._buffers.sets[self._set])
        offset = self.bucket if kept else 0
        starts = {}  # id of a prefill's state set -> its first row in the concatenation
        for request in joining:
            states, row = request.states
            if id(states) not in starts:
                starts[id(states)] = offset
                parts.append(states)
                offset += int(states[("conv_state", 0)].shape()[0])
            index.append(starts[id(states)] + row)
        bucket = self.bucket_for(len(rows))
        target = 1 - self._set if bucket == self.bucket else 0
        rows_index = np.zeros(bucket, np.int64)  # padding rows copy row 0; their outputs are ignored
        rows_index[:len(index)] = index
        self._gather.gather(parts, rows_index, self._decoder.buffers_for(bucket).sets[target])
        self.rows, self.bucket, self._set = rows, bucket, target
        self._decoder.chosen = None  # the ids buffer no longer matches the rows
        for request in joining:
            request.states = None

    def decode(self, tokens: np.ndarray) -> None:
        """One decode step at the bucket size through the bucket's fixed bindings (and CUDA graphs)."""
        decoder, rows = self._decoder, len(self.rows)
        decoder.buffers, decoder.current = self._buffers, self._set
        padded = np.zeros(self.bucket, np.int64)
        padded[:rows] = tokens
        if decoder.chosen is not None and np.array_equal(decoder.chosen[:rows], padded[:rows]):
            padded[rows:] = decoder.chosen[rows:]  # the head wrote them already: no copy to the device
        decoder.step(padded)
        self._set = decoder.current

    def clear(self) -> None:
        self.rows, self.bucket, self._set = [], None, 0
        self._decoder.chosen = None
