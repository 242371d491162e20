"""The row gather graph (runtime/row_gather.py) against NumPy's concatenate and indexing."""

from __future__ import annotations

import numpy as np
import pytest

from mamba_export.runtime.io_binding import Device, state_set
from mamba_export.runtime.row_gather import RowGather, gather_graph
from mamba_export.runtime.session import CPU_PROVIDER
from mamba_export.runtime.states import StateSpec

SPEC = StateSpec(num_layers=2, intermediate_size=6, conv_kernel=4, state_size=5,
                 conv_dtype=np.dtype(np.float16), ssm_dtype=np.dtype(np.float32))
CPU = Device("cpu")


def random_set(batch: int, seed: int) -> tuple:
    """A state set of CPU OrtValues and the same arrays in NumPy."""
    rng = np.random.default_rng(seed)
    arrays = {key: rng.standard_normal(value.shape()).astype(SPEC.dtype(key[0]))
              for key, value in state_set(SPEC, batch, CPU).items()}
    return {key: CPU.copy_of(array) for key, array in arrays.items()}, arrays


@pytest.mark.parametrize(("sizes", "rows"), [
    ((3,), [2, 0, 0, 1]),  # rows only leave or move: one part, no join inputs
    ((4,), [3]),
    ((2, 3), [1, 4, 2, 0, 3, 3]),  # the batch and one prompt group
    ((4, 1, 2), [0, 2, 3, 4, 6, 5, 0, 0]),  # the batch and two groups, padded with row 0
    ((1, 2), [1, 2]),  # the one old row leaves, a group of two joins
])
def test_gather_equals_numpy_concatenate_and_index(sizes, rows):
    gather = RowGather(SPEC, [CPU_PROVIDER])
    parts = [random_set(size, seed) for seed, size in enumerate(sizes)]
    target = state_set(SPEC, len(rows), CPU)
    gather.gather([values for values, _ in parts], np.array(rows), target)
    for key, value in target.items():
        expected = np.concatenate([arrays[key] for _, arrays in parts])[rows]
        np.testing.assert_array_equal(value.numpy(), expected)
        assert value.numpy().dtype == SPEC.dtype(key[0])


def test_one_part_needs_no_concat_and_a_target_among_the_inputs_is_refused():
    nodes = {node.op_type for node in gather_graph(SPEC, 1).graph.node}
    assert nodes == {"Gather"}
    assert {node.op_type for node in gather_graph(SPEC, 2).graph.node} == {"Concat", "Gather"}
    values, _ = random_set(2, 0)
    with pytest.raises(ValueError, match="cannot write into one of its inputs"):
        RowGather(SPEC, [CPU_PROVIDER]).gather([values], np.array([1, 0]), values)
    with pytest.raises(ValueError, match="at least one part"):
        gather_graph(SPEC, 0)
