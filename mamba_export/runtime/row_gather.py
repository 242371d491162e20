"""Rearranging the rows of a batch's states where they live: Gather(Concat(parts)) along the batch axis.

The serving scheduler keeps its running batch's states on the device, and requests join
and leave between decode steps. Bringing every layer's states to the host to drop or add a
row would cost as much as the per-token round trip the device buffers exist to avoid (for
mamba-130m at batch 128, about 320 MB each way). This small ONNX graph, run in a session of
its own on the model's provider, takes for every state tensor the batch's current rows and
the rows of freshly read prompts (the *parts*, each (rows_p, ...)), concatenates them along
axis 0 and gathers the rows the new batch wants, in its order, straight into that batch's
device buffers. Only the int64 index vector crosses from the host.

A graph is built per number of parts: one part (rows only leave or move) needs no Concat, so
no zero-row tensors are ever bound.
"""

from __future__ import annotations

import numpy as np

from mamba_export import graph_io
from mamba_export.runtime.dtypes import onnx_element_type
from mamba_export.runtime.token_head import IR_VERSION, OPSET

ROWS = "rows"


def part_name(part: int, kind: str, layer: int) -> str:
    return f"part{part}.{graph_io.past_name(layer, kind)}"


def output_name(kind: str, layer: int) -> str:
    return f"gathered.{graph_io.past_name(layer, kind)}"


def gather_graph(spec, parts: int):
    """For every (kind, layer) of ``spec`` (a StateSpec): ``parts`` inputs (rows_p, ...) and
    rows (batch,) int64 -> output (batch, ...) = concatenate(parts)[rows]."""
    from onnx import TensorProto, helper

    if parts < 1:
        raise ValueError(f"a row gather needs at least one part, got {parts}")
    nodes, inputs, outputs = [], [helper.make_tensor_value_info(ROWS, TensorProto.INT64, ["batch"])], []
    for kind, layer in spec.keys():
        element = onnx_element_type(spec.dtype(kind))
        tail = list(spec.shape(kind, 1)[1:])
        names = [part_name(p, kind, layer) for p in range(parts)]
        inputs += [helper.make_tensor_value_info(name, element, [f"rows{p}"] + tail) for p, name in enumerate(names)]
        source = names[0]
        if parts > 1:
            source = f"all.{graph_io.past_name(layer, kind)}"
            nodes.append(helper.make_node("Concat", names, [source], axis=0))
        nodes.append(helper.make_node("Gather", [source, ROWS], [output_name(kind, layer)], axis=0))
        outputs.append(helper.make_tensor_value_info(output_name(kind, layer), element, ["batch"] + tail))
    graph = helper.make_graph(nodes, "row_gather", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


class RowGather:
    """The gather graphs of one StateSpec on ``providers``, one session per number of parts, built on first use."""

    def __init__(self, spec, providers: list):
        self.spec = spec
        self.providers = providers
        self._sessions: dict = {}

    def _session(self, parts: int):
        if parts not in self._sessions:
            import onnxruntime as ort

            model = gather_graph(self.spec, parts).SerializeToString()
            self._sessions[parts] = ort.InferenceSession(model, providers=self.providers)
        return self._sessions[parts]

    def gather(self, parts: list, rows: np.ndarray, target: dict) -> None:
        """target[key] := concatenate([part[key] for part in parts])[rows] for every state key.

        parts and target: dicts (kind, layer) -> OrtValue, as io_binding's state sets; ``target``
        has len(rows) rows and must not be one of ``parts`` (the graph reads while it writes).
        """
        if any(part is target for part in parts):
            raise ValueError("a row gather cannot write into one of its inputs")
        session = self._session(len(parts))
        binding = session.io_binding()
        binding.bind_cpu_input(ROWS, np.ascontiguousarray(rows, dtype=np.int64))
        for kind, layer in self.spec.keys():
            for p, part in enumerate(parts):
                binding.bind_ortvalue_input(part_name(p, kind, layer), part[(kind, layer)])
            binding.bind_ortvalue_output(output_name(kind, layer), target[(kind, layer)])
        session.run_with_iobinding(binding)
