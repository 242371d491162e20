"""Generation on CUDA with the states kept on the GPU.

A host round trip per token would copy every layer's state to the CPU and back
(for mamba-130m: 24 layers x (1536 x 16 + 1536 x 3) floats per row). Instead the
states live in two sets of device OrtValues, A and B, and two IO bindings are
built once per batch size: one reads A and writes B, the other reads B and
writes A. Each decode step runs the binding whose input set holds the current
states, so nothing is copied or rebound between tokens. Per step only the chosen
tokens cross to the host (batch int64s): the token head (``token_head.py``) takes
the argmax next to the logits and writes it into the next step's input buffer.
Sampling brings back the float32 logits of the last position instead.

An export with ``next_tokens`` (``--next-tokens``) takes the argmax inside the graph: then
``generate()`` keeps the ids in a ring of ``slots`` rows (``token_ring.py``), and decode binding
``s`` reads row ``s`` and writes its ``next_tokens`` into row ``s + 1`` (the prefill writes row 0),
so the choice is part of the step's CUDA graph, no second session runs per token, and greedy
decoding reads the tokens back once every ``RuntimeOptions.read_tokens_every`` steps
(:meth:`DeviceDecoder.read_every`). Whichever row the next binding reads holds the chosen
tokens; the host overwrites it only where its tokens differ (sampling, finished rows). The
state sets alternate with the binding's parity, so ``slots`` is even.

With CUDA graphs (the default for provider "cuda") the decode bindings of each
batch size (two, or one per ring row) are captured as graphs of their own (``gpu_graph_id`` run option), which is legal
because each always sees the same device addresses and shapes. Before its capture,
each binding runs ``WARMUP_RUNS`` times without a graph, so that allocations and
per-shape library set-up (cuBLAS, cuDNN plans) happen outside the capture; the runs
read one set and write the other, so repeating one changes nothing. The prefill
has a new length every time and runs outside any graph (``gpu_graph_id = -1``), as
does every other run of the session. ONNX Runtime also needs every node of the
graph on the CUDA provider for graphs; :mod:`mamba_export.runtime.session` reports
a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mamba_export import graph_io
from mamba_export.errors import BackendUnavailableError
from mamba_export.runtime.dtypes import empty_ort_value, to_ort_value
from mamba_export.runtime.inputs import pad_left_to_bucket
from mamba_export.runtime.session import NO_GRAPH, run_options
from mamba_export.runtime.token_ring import TokenRing

# Runs of each decode binding without a graph before its capture.
WARMUP_RUNS = 2


@dataclass(frozen=True)
class Device:
    """Where the buffers live: ("cuda", 0) in use; ("cpu", 0) lets the CPU tests run this logic."""

    kind: str = "cuda"
    index: int = 0

    def empty(self, shape: tuple, dtype):
        return empty_ort_value(shape, dtype, self.kind, self.index)

    def copy_of(self, array: np.ndarray):
        return to_ort_value(array, self.kind, self.index)


def state_set(spec, batch: int, device: Device, zeros: bool = False) -> dict:
    """Buffers for every layer's state on ``device``, keyed by (kind, layer)."""
    def make(kind):
        shape, dtype = spec.shape(kind, batch), spec.dtype(kind)
        return device.copy_of(np.zeros(shape, dtype)) if zeros else device.empty(shape, dtype)

    return {(kind, i): make(kind) for kind, i in spec.keys()}


def token_buffer(device: Device, batch: int):
    """A (batch, 1) int64 buffer of zeros on ``device``: ids, or next_tokens nobody reads."""
    return device.copy_of(np.zeros((batch, 1), np.int64))


def bind_states(binding, past: dict, present: dict) -> None:
    for (kind, i), value in past.items():
        binding.bind_ortvalue_input(graph_io.past_name(i, kind), value)
    for (kind, i), value in present.items():
        binding.bind_ortvalue_output(graph_io.present_name(i, kind), value)


def ring_slots(read_every: int) -> int:
    """Rows of a token ring that holds ``read_every`` unread steps: even (the state sets alternate), at least 2."""
    return max(2, read_every + read_every % 2)


@dataclass
class DeviceBuffers:
    """Everything bound for one batch size: zeros (None for a caller that reads no prompt into
    them), the A/B state sets, token and logits buffers, the decode bindings (one per slot), their
    graph ids and whether each has been captured."""

    batch: int
    zeros: dict | None
    sets: tuple
    ids: tuple  # without in-graph tokens: the one ids buffer both decode bindings read (twice); else ()
    mask: object
    logits: object
    decode_bindings: tuple
    graph_ids: tuple
    captured: list
    graph_options: tuple  # the RunOptions naming each binding's graph, built once
    head_binding: object = None  # the token head's greedy binding on ``logits`` -> ``ids[0]``, built on first use
    # With in-graph tokens: the ring of ids rows (token_ring.py); decode binding s reads row s, writes row s + 1.
    ring: TokenRing | None = None
    # Where the decode bindings write next_tokens for a caller that does not read its ids from them
    # (an export with next_tokens, in_graph_tokens False: the scheduler); None otherwise.
    spare: object = None

    @property
    def in_graph_tokens(self) -> bool:
        return self.ring is not None

    @property
    def slots(self) -> int:
        return len(self.decode_bindings)

    @classmethod
    def allocate(cls, model, batch: int, first_graph_id: int, device: Device, zeros: bool = True,
                 in_graph_tokens: bool = False, slots: int = 2) -> DeviceBuffers:
        """in_graph_tokens: the export has next_tokens and the caller takes its tokens from them, through
        a ring of ``slots`` rows (even). An export with next_tokens whose caller does not (the scheduler)
        gets them written to a spare buffer, and two bindings read its one ids buffer."""
        if slots < 2 or slots % 2 or (slots != 2 and not in_graph_tokens):
            raise ValueError(f"decode bindings: 2, or an even number with in-graph tokens; got {slots}")
        spec, runner, session = model.state_spec, model.runner, model.session
        sets = (state_set(spec, batch, device), state_set(spec, batch, device))
        ring = TokenRing(device, slots, batch) if in_graph_tokens else None
        ids = () if in_graph_tokens else (token_buffer(device, batch),) * 2
        spare = token_buffer(device, batch) if model.folder.has_next_tokens and not in_graph_tokens else None
        mask = device.copy_of(np.ones((batch, 1), np.int64))
        logits = device.empty((batch, 1, runner.head_width), runner.head_dtype)
        bindings = []
        for slot in range(slots):
            source, target = slot % 2, (slot + 1) % 2
            binding = session.io_binding()
            if ring is not None:
                ring.bind_input(binding, graph_io.INPUT_IDS, slot)
                ring.bind_output(binding, graph_io.NEXT_TOKENS, slot + 1)
            else:
                binding.bind_ortvalue_input(graph_io.INPUT_IDS, ids[0])
                if spare is not None:
                    binding.bind_ortvalue_output(graph_io.NEXT_TOKENS, spare)
            binding.bind_ortvalue_input(graph_io.ATTENTION_MASK, mask)
            binding.bind_ortvalue_output(runner.head_output, logits)
            bind_states(binding, sets[source], sets[target])
            bindings.append(binding)
        graph_ids = tuple(range(first_graph_id, first_graph_id + slots))
        zeros = state_set(spec, batch, device, zeros=True) if zeros else None
        graph_options = tuple(run_options(graph_id) for graph_id in graph_ids)
        return cls(batch, zeros, sets, ids, mask, logits, tuple(bindings), graph_ids, [False] * slots, graph_options,
                   ring=ring, spare=spare)


class DeviceDecoder:
    """The generation decoder of ``generation.py`` for provider="cuda" with IO binding.

    ``use_graph`` defaults to the model's options; the CPU tests set it to run the capture
    bookkeeping on CPU OrtValues (the CPU provider ignores graph ids). ``first_graph_id``: the
    graph ids of ``cache``'s buffers count up from it (``slots`` per batch size: two, or the ring's
    rows). ONNX Runtime keeps graph ids per session, so every cache on one session needs its own
    range. ``zeros=False``: the buffers hold no zero states (a caller that never runs
    :meth:`prefill`). ``in_graph_tokens``: take greedy tokens from the graph's ``next_tokens``
    (default: where the export has them).
    ``read_every``: with them, greedy decoding reads the tokens back once every this many steps
    (default ``RuntimeOptions.read_tokens_every``; the ring holds that many, rounded up to even).
    """

    def __init__(self, model, cache: dict, device: Device = Device(), use_graph: bool | None = None,
                 first_graph_id: int = 1, zeros: bool = True, bucket: int | None = None,
                 in_graph_tokens: bool | None = None, read_every: int | None = None):
        self.model = model
        # Prompts are left-padded so that batch x length is a multiple of this (RuntimeOptions.prefill_bucket).
        self.bucket = model.options.prefill_multiple if bucket is None else int(bucket)
        self.cache = cache
        self.device = device
        self.first_graph_id = first_graph_id
        self.zeros = zeros
        self.use_graph = model.options.use_cuda_graph if use_graph is None else bool(use_graph)
        has_tokens = model.folder.has_next_tokens
        self.in_graph_tokens = has_tokens if in_graph_tokens is None else bool(in_graph_tokens)
        if self.in_graph_tokens and not has_tokens:
            raise ValueError(f"{model.folder.path} has no {graph_io.NEXT_TOKENS} output (export with --next-tokens)")
        every = model.options.token_read_interval if read_every is None else read_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"read_every must be an integer >= 1, got {every!r}")
        self.read_tokens_every = every
        self.buffers = None
        self.current = 0  # the slot of the next decode step; its state set (slot % 2) holds the states
        self.pending = None  # the logits OrtValue of the last call, (batch, positions, vocab)
        self.chosen = None  # host copy of the tokens the head wrote into buffers.ids, if it did

    @classmethod
    def for_model(cls, model) -> DeviceDecoder:
        from mamba_export.runtime.session import cuda_device_id

        # Buffers (and captured CUDA graphs) are kept per batch size across generate() calls.
        return cls(model, model.decode_cache, Device("cuda", cuda_device_id(model.options)))

    def buffers_for(self, batch: int) -> DeviceBuffers:
        """The buffers of ``batch`` rows in ``cache``, allocated on first use."""
        if batch not in self.cache:
            # generate()'s range starts at 1: graph id 0 is ONNX Runtime's default, -1 means none.
            first_id = self.first_graph_id + sum(buffers.slots for buffers in self.cache.values())
            slots = ring_slots(self.read_tokens_every) if self.in_graph_tokens else 2
            self.cache[batch] = DeviceBuffers.allocate(self.model, batch, first_id, self.device, self.zeros,
                                                       self.in_graph_tokens, slots)
        return self.cache[batch]

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> None:
        """Read the prompt from the zero state; the states land in set A, the logits stay on the device.

        The prompt is left-padded first, so that batch x length is a multiple of ``bucket``
        (masked: the same states)."""
        input_ids, attention_mask = pad_left_to_bucket(input_ids, attention_mask, self.bucket)
        runner = self.model.runner
        batch, length = input_ids.shape
        self.buffers = self.buffers_for(batch)
        binding = self.model.session.io_binding()
        binding.bind_cpu_input(graph_io.INPUT_IDS, input_ids)
        binding.bind_cpu_input(graph_io.ATTENTION_MASK, attention_mask)
        logits = self.device.empty((batch, runner.head_positions(length), runner.head_width), runner.head_dtype)
        binding.bind_ortvalue_output(runner.head_output, logits)
        if self.buffers.ring is not None:
            # The tokens land where the first decode binding reads them (unused when the caller samples).
            # Otherwise the output stays unbound: the prefill runs outside any graph.
            self.buffers.ring.bind_output(binding, graph_io.NEXT_TOKENS, 0)
        bind_states(binding, self.buffers.zeros, self.buffers.sets[0])
        self.model.session.run_with_iobinding(binding, run_options(NO_GRAPH) if self.use_graph else None)
        self.current, self.pending, self.chosen = 0, logits, None

    def next_tokens(self, settings, rng: np.random.Generator) -> np.ndarray:
        """The tokens chosen from the last call's logits, (batch,) int64 on the host."""
        head, buffers = self.model.token_head, self.buffers
        if settings.do_sample:
            return settings.choose(head.last_logits(self.pending), rng)
        if buffers.ring is not None:
            # The last call's graph has written them into the row the next step reads.
            self.chosen = buffers.ring.read()[self.current].copy()
            return self.chosen.copy()
        ids = buffers.ids[0]
        if self.pending is buffers.logits:  # a decode step: the same buffers every time
            if buffers.head_binding is None:
                buffers.head_binding = head.greedy_binding(buffers.logits, ids)
            head.run(buffers.head_binding)
        else:
            head.greedy(self.pending, ids)
        self.chosen = ids.numpy().reshape(-1)
        return self.chosen.copy()

    def step(self, tokens: np.ndarray) -> None:
        """One token per row; the states move from the current set to the other one."""
        buffers = self.buffers
        if self.chosen is None or not np.array_equal(tokens, self.chosen):
            tokens = np.ascontiguousarray(tokens.reshape(-1), dtype=np.int64)
            if buffers.ring is not None:
                buffers.ring.write(self.current, tokens)
            else:
                buffers.ids[0].update_inplace(tokens.reshape(-1, 1))
        self.chosen = None
        self._run_step()

    def read_every(self, settings) -> int:
        """How many greedy steps generate() may run between two reads of their tokens (``tokens``): with
        the graph choosing them into the ring, ``read_tokens_every`` (at most the ring's rows); else 1,
        a read after every step (sampling chooses on the host)."""
        buffers = self.buffers
        if buffers is None or buffers.ring is None or settings.do_sample:
            return 1
        return min(self.read_tokens_every, buffers.slots)

    def advance(self) -> None:
        """One decode step on the tokens the last call chose on the device (no read, no write)."""
        self.chosen = None
        self._run_step()

    def tokens(self, first: int, end: int) -> np.ndarray:
        """The greedy tokens of steps ``first`` to ``end - 1`` after the prefill (0: the prefill's),
        (end - first, batch) int64: one copy of the ring."""
        return self.buffers.ring.tokens(first, end)

    def _run_step(self) -> None:
        """The current decode binding (captured or replayed where graphs are on); the states and ids
        move to the other set."""
        buffers = self.buffers
        binding = buffers.decode_bindings[self.current]
        session = self.model.session
        if not self.use_graph:
            session.run_with_iobinding(binding)
        elif buffers.captured[self.current]:
            session.run_with_iobinding(binding, buffers.graph_options[self.current])
        else:
            self._capture(binding)
        self.current = (self.current + 1) % buffers.slots
        self.pending = buffers.logits

    def _capture(self, binding) -> None:
        """Warm the current binding up without a graph, then run it with its graph id (ONNX Runtime
        captures on that run and replays the graph on every later run with the id)."""
        buffers, session = self.buffers, self.model.session
        try:
            for _ in range(WARMUP_RUNS):
                session.run_with_iobinding(binding, run_options(NO_GRAPH))
            session.run_with_iobinding(binding, buffers.graph_options[self.current])
        except Exception as error:  # onnxruntime raises its own untyped exceptions
            raise BackendUnavailableError(
                f"capturing the decode step at batch {buffers.batch} in a CUDA graph (id "
                f"{buffers.graph_ids[self.current]}) failed: {error}; RuntimeOptions(provider='cuda', "
                "cuda_graph=False) decodes without graphs") from error
        buffers.captured[self.current] = True
