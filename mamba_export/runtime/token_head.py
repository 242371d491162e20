"""Picking the next tokens where the logits are: last position, float32, greedy argmax.

A decode step of mamba-130m at batch 32 makes 32 x 50280 logits. Copying them to the
host and taking the argmax in NumPy costs more than the step itself on a GPU, so a
small ONNX graph, run on the model's provider, gathers the last position, casts it
to float32 and takes the argmax. Greedy decoding then brings back one int64 per row,
and the argmax is written straight into the next step's ``input_ids`` buffer.
Sampling still needs the float32 logits of the last position on the host
(``last_logits``): (batch, vocab) instead of (batch, sequence, vocab).

The argmax compares the same float32 values NumPy would (float16 and bfloat16 widen
exactly). On ties, ONNX's ArgMax takes the first index, as NumPy does; ONNX Runtime's
CUDA kernel does not promise an order, which matters only for exactly equal logits.
"""

from __future__ import annotations

import numpy as np

from mamba_export.runtime.dtypes import onnx_element_type, to_ort_value

LOGITS = "logits"
LAST_LOGITS = "last_logits"
NEXT_TOKENS = "next_tokens"
OPSET = 18
IR_VERSION = 9  # read by every ONNX Runtime this package supports


def head_graph(dtype: np.dtype):
    """logits (batch, sequence, vocab) in ``dtype`` -> last_logits (batch, vocab) float32 and
    next_tokens (batch, 1) int64."""
    from onnx import TensorProto, helper

    element = onnx_element_type(dtype)
    last = helper.make_tensor("last_index", TensorProto.INT64, [], [-1])
    nodes = [
        helper.make_node("Gather", [LOGITS, "last_index"], ["last"], axis=1),
        helper.make_node("Cast", ["last"], [LAST_LOGITS], to=TensorProto.FLOAT),
        helper.make_node("ArgMax", [LAST_LOGITS], [NEXT_TOKENS], axis=1, keepdims=1, select_last_index=0),
    ]
    graph = helper.make_graph(
        nodes, "token_head",
        [helper.make_tensor_value_info(LOGITS, element, ["batch", "sequence", "vocab"])],
        [helper.make_tensor_value_info(LAST_LOGITS, TensorProto.FLOAT, ["batch", "vocab"]),
         helper.make_tensor_value_info(NEXT_TOKENS, TensorProto.INT64, ["batch", 1])],
        initializer=[last])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


class TokenHead:
    """The head graph in a session of its own on ``providers`` (the model's provider list)."""

    def __init__(self, dtype: np.dtype, providers: list):
        import onnxruntime as ort

        self.session = ort.InferenceSession(head_graph(dtype).SerializeToString(), providers=providers)

    def greedy_binding(self, logits, tokens):
        """An IO binding that writes the argmax of the last position of ``logits``, an OrtValue
        (batch, sequence, vocab), into ``tokens``, an OrtValue (batch, 1) int64 on the same device.
        A caller whose buffers stay put keeps it and runs it with :meth:`run`."""
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(LOGITS, logits)
        binding.bind_ortvalue_output(NEXT_TOKENS, tokens)
        return binding

    def run(self, binding) -> None:
        self.session.run_with_iobinding(binding)

    def greedy(self, logits, tokens) -> None:
        """:meth:`greedy_binding` run once."""
        self.run(self.greedy_binding(logits, tokens))

    def last_logits(self, logits) -> np.ndarray:
        """logits: OrtValue (batch, sequence, vocab) -> host (batch, vocab) float32 of the last position."""
        batch, _, vocab = logits.shape()
        host = np.empty((batch, vocab), np.float32)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(LOGITS, logits)
        binding.bind_ortvalue_output(LAST_LOGITS, to_ort_value(host))
        self.session.run_with_iobinding(binding)
        return host
