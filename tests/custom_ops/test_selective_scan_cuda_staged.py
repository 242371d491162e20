"""The chunked CUDA scan with its channels-last tiles staged through shared memory
(selective_scan/cuda_chunked_staged.cuh), switched on per process with the library's
mamba_export_ops_set_scan_loads (selective_scan/cuda_loads.h). It must give the bits of
the strided kernel it replaces (same arithmetic, only the loads differ), hold to the
float64 reference, run where it applies (the CUDA trace names it) and leave the calls
it cannot serve (channels first, D not a multiple of the block's channels) to the
strided kernel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import test_selective_scan_cuda as scan_cuda
from library_switches import check_unknown_mode_is_refused, switch_fixture
from packed_cases import check_packed_scan

pytestmark = pytest.mark.gpu

cuda_library = scan_cuda.cuda_library
DTYPES = scan_cuda.DTYPES
STRIDED, STAGED = 0, 1

# Channels-last chunked cases: 4, 8 and 16 steps per lane, partial tiles, N above and below
# one staged slice of states (8 or 16), groups, absent optional inputs, mamba-130m's width.
CASES = {
    "chunked_17": dict(batch=2, dim=8, length=17, state=16),
    "chunked_200": dict(batch=1, dim=4, length=200, state=16),
    "chunked_2125": dict(batch=1, dim=8, length=2125, state=16),
    "state_5": dict(batch=2, dim=8, length=40, state=5),
    "state_20": dict(batch=2, dim=8, length=300, state=20),
    "state_1": dict(batch=1, dim=4, length=100, state=1),
    "groups": dict(batch=2, dim=16, length=64, state=16, groups_b=2, groups_c=4),
    "no_optional": dict(batch=2, dim=8, length=70, state=16, present=()),
    "mamba_130m": dict(batch=1, dim=1536, length=2048, state=16),
}


scan_loads = switch_fixture("mamba_export_ops_set_scan_loads", STAGED)


def _both(library, scan_loads, io_dtype, **case):
    scan_loads(STRIDED)
    strided = scan_cuda.check_parity(library, io_dtype, True, layout=1, **case)
    scan_loads(STAGED)
    staged = scan_cuda.check_parity(library, io_dtype, True, layout=1, **case)
    return strided, staged


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_staged_loads_give_the_strided_bits(cuda_library, scan_loads, case, io_dtype):
    strided, staged = _both(cuda_library, scan_loads, io_dtype, seed=4, **CASES[case])
    np.testing.assert_array_equal(staged[2], strided[2], err_msg="y")
    np.testing.assert_array_equal(staged[3], strided[3], err_msg="last_state")


@pytest.mark.parametrize("io_dtype", DTYPES)
# The seeds place B, C and z at leads that are (14), are partly (7, 11) and are not (6) aligned
# to the staged kernel's word loads, so both its word and its element loads give the plain bits.
@pytest.mark.parametrize("seed", [6, 7, 11, 14])
def test_staged_loads_read_packed_inputs(cuda_library, scan_loads, io_dtype, seed):
    """B and C from one x_proj output, z from the in_proj output, as the lean graph feeds them."""
    scan_loads(STAGED)
    case = dict(batch=2, dim=64, length=300, state=16, seed=seed, layout=1)
    inputs, _, y, last_state = scan_cuda.check_parity(cuda_library, io_dtype, True, **case)
    check_packed_scan(lambda model: scan_cuda.cuda_session(model, cuda_library), inputs, (y, last_state), io_dtype,
                      True, case["seed"], shared_bc=True)


@pytest.mark.parametrize(("case", "kernel"), [
    (dict(batch=1, dim=8, length=300, state=16, layout=1), "StagedChunkedScanKernel"),
    (dict(batch=1, dim=7, length=300, state=16, layout=1), "ChunkedScanKernel"),  # D not whole blocks
    (dict(batch=1, dim=8, length=300, state=16, layout=0), "ChunkedScanKernel"),  # channels first
])
def test_staged_kernel_runs_where_it_applies(cuda_library, scan_loads, case, kernel, tmp_path):
    from torch.profiler import ProfilerActivity, profile

    scan_loads(STAGED)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        scan_cuda.check_parity(cuda_library, "float32", True, **case)
    prof.export_chrome_trace(str(tmp_path / "trace.json"))
    events = json.loads((tmp_path / "trace.json").read_text()).get("traceEvents", [])
    names = {e["name"] for e in events if e.get("cat") == "kernel" and "ScanKernel" in e.get("name", "")}
    staged = any("Staged" in name for name in names)
    assert names and staged == (kernel == "StagedChunkedScanKernel"), names


def test_unknown_mode_is_refused(cuda_library):
    check_unknown_mode_is_refused(cuda_library, "mamba_export_ops_set_scan_loads")
