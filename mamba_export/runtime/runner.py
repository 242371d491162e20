"""One call of an exported graph with host arrays in and host arrays out.

Outputs are written by ONNX Runtime straight into arrays allocated here (IO
binding to CPU OrtValues over NumPy buffers). That is the one way to get
bfloat16 outputs back through ONNX Runtime's Python API, and it spares a copy
for the other dtypes. With the CUDA provider ONNX Runtime copies the host inputs
to the device and the outputs back, which suits single calls; token-by-token
generation on CUDA keeps its state on the device instead (``io_binding.py``).
"""

from __future__ import annotations

import numpy as np

from mamba_export import graph_io
from mamba_export.runtime.dtypes import export_dtype, from_ort_type, to_ort_value
from mamba_export.runtime.folder import ExportFolder
from mamba_export.runtime.states import StateSpec


def state_spec(folder: ExportFolder, session) -> StateSpec:
    """Sizes from export_info.json; dtypes from the graph (export dtype if the graph is silent)."""
    info = folder.info
    types = {meta.name: meta.type for meta in session.get_inputs()}
    conv_type = types.get(graph_io.past_name(0, "conv_state"))
    ssm_type = types.get(graph_io.past_name(0, "ssm_state"))
    conv = from_ort_type(conv_type, "past.0.conv_state") if conv_type else export_dtype(folder.dtype)
    ssm = from_ort_type(ssm_type, "past.0.ssm_state") if ssm_type else np.dtype(np.float32)
    return StateSpec(folder.num_layers, int(info["intermediate_size"]), int(info["conv_kernel"]),
                     int(info["state_size"]), conv, ssm)


class GraphRunner:
    """Runs the session of one export on host arrays; knows every output's shape and dtype."""

    def __init__(self, session, folder: ExportFolder, spec: StateSpec, run_options=None):
        self.session = session
        # With CUDA graphs on, these say "no graph" (gpu_graph_id -1): a plain call must neither
        # capture nor replay, since its shapes and buffers change from call to call.
        self.run_options = run_options
        self.folder = folder
        self.spec = spec
        self.input_names = [meta.name for meta in session.get_inputs()]
        self._outputs = {meta.name: meta for meta in session.get_outputs()}
        self.head_output = folder.head_output
        self.head_dtype = from_ort_type(self._outputs[self.head_output].type, self.head_output)
        self.head_width = self._head_width()

    def _head_width(self) -> int:
        last = self._outputs[self.head_output].shape[-1]
        if isinstance(last, int):
            return last
        info = self.folder.info
        return int(info["vocab_size"] if self.folder.is_causal_lm else info["hidden_size"])

    def head_positions(self, sequence: int) -> int:
        """How many positions the head output has for an input of ``sequence`` tokens."""
        return 1 if self.folder.logits_mode == "last" and self.folder.is_causal_lm else sequence

    def output_buffers(self, batch: int, sequence: int) -> dict:
        """Fresh host arrays for every output of a call on (batch, sequence) inputs."""
        shape = (batch, self.head_positions(sequence), self.head_width)
        buffers = {self.head_output: np.empty(shape, self.head_dtype)}
        for i in range(self.spec.num_layers):
            for kind in graph_io.STATE_KINDS:
                buffers[graph_io.present_name(i, kind)] = np.empty(self.spec.shape(kind, batch),
                                                                   self.spec.dtype(kind))
        return buffers

    def run(self, feeds: dict) -> dict:
        """Run on ``feeds`` (name -> host array); returns name -> host array for every output."""
        batch, sequence = feeds[graph_io.INPUT_IDS].shape
        outputs = self.output_buffers(batch, sequence)
        binding = self.session.io_binding()
        for name in self.input_names:
            binding.bind_ortvalue_input(name, to_ort_value(feeds[name]))
        for name, buffer in outputs.items():
            binding.bind_ortvalue_output(name, to_ort_value(buffer))
        self.session.run_with_iobinding(binding, self.run_options)
        return outputs
