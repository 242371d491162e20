"""Trace a :class:`StatefulModel` into one ONNX graph with a dynamic batch and sequence.

The example inputs are small (two rows of five tokens); the batch and sequence
dimensions are declared dynamic, so the same graph runs prompts and single decode
steps of any length. The SelectiveScan op becomes one custom node here; the
standard backend rewrites it later (``mamba_export.ops.onnx_standard``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import torch

from mamba_export import graph_io
from mamba_export.export.stateful import StatefulModel
from mamba_export.ops import ort_norms
from mamba_export.ops.onnx_custom import custom_translation_table

EXAMPLE_BATCH = 2
# Not 0 or 1: torch.export specialises those sizes, and the graph must stay generic.
EXAMPLE_LENGTH = 5
BATCH_DIM = "batch"
SEQUENCE_DIM = "sequence"


def example_inputs(wrapper: StatefulModel, vocab_size: int, device) -> tuple:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, vocab_size, (EXAMPLE_BATCH, EXAMPLE_LENGTH), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    states = wrapper.zero_states(EXAMPLE_BATCH, device=device)
    return (input_ids.to(device), attention_mask.to(device), *states)


def dynamic_shapes(num_layers: int) -> tuple:
    batch = torch.export.Dim(BATCH_DIM, min=1)
    sequence = torch.export.Dim(SEQUENCE_DIM, min=1)
    tokens = {0: batch, 1: sequence}
    # torch.export matches the signature: the *past_states varargs are one nested tuple.
    states = tuple({0: batch} for _ in range(2 * num_layers))
    return (tokens, tokens, states)


@contextlib.contextmanager
def _quiet():
    """The exporter reports each of its stages on stdout and logs known-harmless warnings;
    our own progress display replaces them."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def trace(wrapper: StatefulModel, num_layers: int, vocab_size: int, head_output: str, opset: int,
          device="cpu"):
    """Export ``wrapper`` with ``torch.onnx.export(dynamo=True)``; returns the ONNXProgram."""
    args = example_inputs(wrapper, vocab_size, device)
    with _quiet(), torch.no_grad():
        return torch.onnx.export(
            wrapper,
            args,
            dynamo=True,
            dynamic_shapes=dynamic_shapes(num_layers),
            input_names=graph_io.input_names(num_layers),
            output_names=graph_io.output_names(num_layers, head_output),
            opset_version=opset,
            custom_translation_table=custom_translation_table() | ort_norms.translation_table(),
            optimize=True,
            verbose=False,
        )
