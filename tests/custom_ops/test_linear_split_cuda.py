"""The serial split of Linear's tensor-core kernel (linear/split.h) against the cluster.

Products with few column blocks split K over several blocks. The cluster mode (0, the default)
adds their sums through distributed shared memory; the serial split (1) writes them to a
per-stream workspace and the last block to arrive adds them in the same order, so both give the
same bits; the wide serial split (2) also splits products of fewer column blocks than
multiprocessors, which the other modes leave whole, so those products change their order of
sums and are held to the float64 reference instead. Each test switches the very library ONNX
Runtime loaded (library_switches.py) and puts the process's mode back after.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import test_selective_scan_cuda as scan_cuda
from library_switches import check_unknown_mode_is_refused, switch_fixture
from linear_cases import TOLERANCE, check_parity, make_inputs, reference
from scan_cases import relative_error
from test_linear_cuda import check_graph_replays, on_cuda

from mamba_export.ops.linear import cuda_path

pytestmark = pytest.mark.gpu

cuda_library = scan_cuda.cuda_library

CLUSTER, SERIAL, SERIAL_WIDE = 0, 1, 2
SPLIT_MODES = (CLUSTER, SERIAL, SERIAL_WIDE)
linear_split = switch_fixture("mamba_export_ops_set_linear_split", CLUSTER, SPLIT_MODES)

# Products every mode splits (at most 16 column blocks): the same bits in every mode.
SPLIT_EVERYWHERE = {
    "x_proj_130m_b32": dict(shape=(32, 1, 1536), outer=80),  # 5 blocks of 16 columns, split 8 ways
    "x_proj_130m_b8": dict(shape=(8, 1, 1536), outer=80),  # 3 blocks of 32 columns
    "x_proj_1.4b_b16": dict(shape=(16, 1, 4096), outer=160),
    "x_proj_1.4b_b1": dict(shape=(1, 1, 4096), outer=160),  # one row, narrow and deep
    "split_uneven_b5": dict(shape=(5, 1, 1000), outer=40),  # 32 steps split 8 ways, K ends inside a step
    "rows_20_k_2_steps": dict(shape=(20, 64), outer=24),  # fewer steps than wanted splits
}
# Products that only the wide mode splits (17 to 131 column blocks on the H200).
SPLIT_WHEN_WIDE = {
    "out_proj_130m_b32": dict(shape=(32, 1, 1536), outer=768),  # 48 blocks of 16 columns
    "dt_proj_130m_b32": dict(shape=(32, 1, 48), outer=1536),  # 96 blocks, K of 2 steps
    "out_proj_130m_b8": dict(shape=(8, 1, 1536), outer=768),  # 24 blocks of 32 columns
    "columns_600_b17": dict(shape=(17, 1, 256), outer=600),  # the last block partly filled
}


def _workspaces(library: str) -> int:
    return ctypes.CDLL(library).mamba_export_ops_linear_split_workspaces()


@pytest.mark.parametrize("spec", list(SPLIT_EVERYWHERE.values()) + list(SPLIT_WHEN_WIDE.values()),
                         ids=list(SPLIT_EVERYWHERE) + list(SPLIT_WHEN_WIDE))
def test_cases_take_the_tensor_core_kernel(spec):
    shape = spec["shape"]
    assert cuda_path(int(np.prod(shape[:-1])), shape[-1], spec["outer"], "float16") == "tile"


@pytest.mark.parametrize("io_dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", sorted(SPLIT_EVERYWHERE))
def test_serial_split_gives_the_clusters_bits(cuda_library, linear_split, case, io_dtype):
    spec = SPLIT_EVERYWHERE[case]
    results = {}
    for mode in SPLIT_MODES:
        linear_split(mode)
        before = _workspaces(cuda_library)
        compute = on_cuda(cuda_library, io_dtype, len(spec["shape"]), True)
        inputs, _ = check_parity(compute, io_dtype, **spec)
        results[mode] = compute(inputs)
        if mode == CLUSTER:
            assert _workspaces(cuda_library) == before, "the cluster mode made a workspace"
    # The serial split ran: a workspace exists for the stream of a session that used it.
    assert _workspaces(cuda_library) >= 1
    for mode in (SERIAL, SERIAL_WIDE):
        np.testing.assert_array_equal(results[mode], results[CLUSTER], err_msg=f"mode {mode}")


@pytest.mark.parametrize("io_dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("constant", [True, False], ids=["initializer", "graph_input"])
@pytest.mark.parametrize("case", sorted(SPLIT_WHEN_WIDE))
def test_wide_split_matches_the_reference(cuda_library, linear_split, case, constant, io_dtype):
    spec = SPLIT_WHEN_WIDE[case]
    linear_split(SERIAL_WIDE)
    compute = on_cuda(cuda_library, io_dtype, len(spec["shape"]), constant)
    check_parity(compute, io_dtype, **spec)
    assert _workspaces(cuda_library) >= 1


def test_counters_start_at_zero_on_every_call(cuda_library, linear_split):
    """Each call leaves its counters at zero: the same product again, and products of other
    shapes between (which use other counters and sums of the same workspace), give the same bits."""
    linear_split(SERIAL_WIDE)
    first = make_inputs(shape=(32, 1536), outer=80, io_dtype="float16", seed=3)
    other = make_inputs(shape=(32, 1536), outer=768, io_dtype="float16", seed=4)
    x_proj = on_cuda(cuda_library, "float16", 2, True)
    out_proj = on_cuda(cuda_library, "float16", 2, True)
    expected = x_proj(first)
    for _ in range(3):
        out_proj(other)
        np.testing.assert_array_equal(x_proj(first), expected)
    assert relative_error(expected.astype(np.float64), reference(first)) <= TOLERANCE["float16"]


@pytest.mark.parametrize("mode", [SERIAL, SERIAL_WIDE], ids=["serial", "serial_wide"])
@pytest.mark.parametrize(("rows", "outer"), [(32, 80), (32, 768), (8, 80)], ids=["x_proj_b32", "out_proj_b32",
                                                                                 "x_proj_b8"])
def test_replays_inside_a_cuda_graph(cuda_library, linear_split, mode, rows, outer):
    """The workspace is made on the stream's first, uncaptured run, so ORT captures the serial
    split's kernel; every replay gives the new x's product (the counters were left at zero)."""
    linear_split(mode)
    check_graph_replays(cuda_library, rows, outer=outer)


def test_unknown_mode_is_refused(cuda_library):
    check_unknown_mode_is_refused(cuda_library, "mamba_export_ops_set_linear_split", SPLIT_MODES)
