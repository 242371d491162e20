"""Generation on CUDA with the states kept on the GPU.

A host round trip per token would copy every layer's state to the CPU and back
(for mamba-130m: 24 layers x (1536 x 16 + 1536 x 3) floats per row). Instead the
states live in two sets of device OrtValues, A and B, and two IO bindings are
built once per batch size: one reads A and writes B, the other reads B and
writes A. Each decode step runs the binding whose input set holds the current
states, so nothing is copied or rebound between tokens; only the next tokens go
up (batch int64s) and the last logits come down.

With ``RuntimeOptions(cuda_graph=True)`` the two decode bindings are captured as
two CUDA graphs (``gpu_graph_id`` run option), which is legal because each one
always sees the same device addresses. The prefill has a different length every
time and runs outside any graph (``gpu_graph_id = -1``). CUDA graphs also need
every node of the graph on the CUDA provider; ONNX Runtime refuses the session
otherwise, and :mod:`mamba_export.runtime.session` reports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mamba_export import graph_io
from mamba_export.runtime.dtypes import BFLOAT16, empty_ort_value, to_ort_value

NO_GRAPH = -1


@dataclass(frozen=True)
class Device:
    """Where the buffers live: ("cuda", 0) in use; ("cpu", 0) lets the CPU tests run this logic."""

    kind: str = "cuda"
    index: int = 0

    def empty(self, shape: tuple, dtype):
        return empty_ort_value(shape, dtype, self.kind, self.index)

    def copy_of(self, array: np.ndarray):
        return to_ort_value(array, self.kind, self.index)


def _state_set(spec, batch: int, device: Device, zeros: bool = False) -> dict:
    """Buffers for every layer's state on ``device``, keyed by (kind, layer)."""
    def make(kind):
        shape, dtype = spec.shape(kind, batch), spec.dtype(kind)
        return device.copy_of(np.zeros(shape, dtype)) if zeros else device.empty(shape, dtype)

    return {(kind, i): make(kind) for i in range(spec.num_layers) for kind in graph_io.STATE_KINDS}


def _bind_states(binding, past: dict, present: dict) -> None:
    for (kind, i), value in past.items():
        binding.bind_ortvalue_input(graph_io.past_name(i, kind), value)
    for (kind, i), value in present.items():
        binding.bind_ortvalue_output(graph_io.present_name(i, kind), value)


def _run_options(graph_id: int | None):
    import onnxruntime as ort

    options = ort.RunOptions()
    if graph_id is not None:
        options.add_run_config_entry("gpu_graph_id", str(graph_id))
    return options


@dataclass
class DeviceBuffers:
    """Everything bound for one batch size: zeros, the A/B state sets, token and logits buffers."""

    batch: int
    zeros: dict
    sets: tuple
    ids: object
    mask: object
    logits: object
    decode_bindings: tuple
    graph_ids: tuple

    @classmethod
    def allocate(cls, model, batch: int, first_graph_id: int, device: Device) -> DeviceBuffers:
        spec, runner, session = model.state_spec, model.runner, model.session
        sets = (_state_set(spec, batch, device), _state_set(spec, batch, device))
        ids = device.copy_of(np.zeros((batch, 1), np.int64))
        mask = device.copy_of(np.ones((batch, 1), np.int64))
        logits = device.empty((batch, 1, runner.head_width), runner.head_dtype)
        bindings = []
        for source, target in ((0, 1), (1, 0)):
            binding = session.io_binding()
            binding.bind_ortvalue_input(graph_io.INPUT_IDS, ids)
            binding.bind_ortvalue_input(graph_io.ATTENTION_MASK, mask)
            binding.bind_ortvalue_output(runner.head_output, logits)
            _bind_states(binding, sets[source], sets[target])
            bindings.append(binding)
        graph_ids = (first_graph_id, first_graph_id + 1)
        zeros = _state_set(spec, batch, device, zeros=True)
        return cls(batch, zeros, sets, ids, mask, logits, tuple(bindings), graph_ids)


def _to_host(value, dtype: np.dtype, shape: tuple) -> np.ndarray:
    """Copy a device OrtValue to a host array (bfloat16 through an OrtValue-to-OrtValue copy)."""
    if np.dtype(dtype) != BFLOAT16:
        return value.numpy()
    host = np.empty(shape, BFLOAT16)
    to_ort_value(host).update_inplace(value)
    return host


class DeviceDecoder:
    """The generation decoder of ``generation.py`` for provider="cuda" with IO binding."""

    def __init__(self, model, cache: dict, device: Device = Device()):
        self.model = model
        self.cache = cache
        self.device = device
        self.use_graph = bool(model.options.cuda_graph)
        self.buffers = None
        self.current = 0  # which state set holds the states after the last call

    @classmethod
    def for_model(cls, model) -> DeviceDecoder:
        # Buffers (and captured CUDA graphs) are kept per batch size across generate() calls.
        return cls(model, model.decode_cache)

    def _buffers_for(self, batch: int) -> DeviceBuffers:
        if batch not in self.cache:
            first_id = 1 + 2 * len(self.cache)  # graph id 0 is reserved by ONNX Runtime
            self.cache[batch] = DeviceBuffers.allocate(self.model, batch, first_id, self.device)
        return self.cache[batch]

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Read the prompt from the zero state; the states land in set A."""
        runner = self.model.runner
        self.buffers = self._buffers_for(input_ids.shape[0])
        binding = self.model.session.io_binding()
        binding.bind_cpu_input(graph_io.INPUT_IDS, input_ids)
        binding.bind_cpu_input(graph_io.ATTENTION_MASK, attention_mask)
        shape = (input_ids.shape[0], runner.head_positions(input_ids.shape[1]), runner.head_width)
        logits = np.empty(shape, runner.head_dtype)
        binding.bind_ortvalue_output(runner.head_output, to_ort_value(logits))
        _bind_states(binding, self.buffers.zeros, self.buffers.sets[0])
        self.model.session.run_with_iobinding(binding, _run_options(NO_GRAPH if self.use_graph else None))
        self.current = 0
        return np.asarray(logits[:, -1, :], dtype=np.float32)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        """One token per row; the states move from the current set to the other one."""
        buffers = self.buffers
        buffers.ids.update_inplace(np.ascontiguousarray(tokens.reshape(-1, 1), dtype=np.int64))
        graph_id = buffers.graph_ids[self.current] if self.use_graph else None
        self.model.session.run_with_iobinding(buffers.decode_bindings[self.current], _run_options(graph_id))
        self.current = 1 - self.current
        runner = self.model.runner
        host = _to_host(buffers.logits, runner.head_dtype, (buffers.batch, 1, runner.head_width))
        return np.asarray(host[:, -1, :], dtype=np.float32)
