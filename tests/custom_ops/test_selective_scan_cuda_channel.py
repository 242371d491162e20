"""The decode scan with one thread per (batch, channel) (selective_scan/cuda_channel.cuh),
switched per process with the library's mamba_export_ops_set_decode_scan
(selective_scan/cuda_loads.h). It must give the bits of the lane groups it replaces (the
same arithmetic, the same order of sums), hold to the float64 reference, run where it
applies (the CUDA trace names it) and leave N > 16 and small batches to the lane groups."""

from __future__ import annotations

import json

import pytest
import test_projected_delta_cuda as projected
import test_selective_scan_cuda as scan_cuda
from library_switches import SCAN_OUTPUTS, check_modes_agree, check_unknown_mode_is_refused, switch_fixture

pytestmark = pytest.mark.gpu

cuda_library = scan_cuda.cuda_library
DTYPES = scan_cuda.DTYPES
LANES, CHANNEL = 0, 1

# batch x D >= 8192 (kChannelMinRows), so the channel kernel applies: N of one to four runs
# of four states, partial runs, a lane group with an empty lane (N = 9), D not a multiple of
# the block, several steps, groups, absent optional inputs, both layouts.
CASES = {
    "decode_130m_b32": dict(batch=32, dim=1536, length=1, state=16),
    "decode_state_1": dict(batch=4, dim=2048, length=1, state=1),
    "decode_state_5": dict(batch=8, dim=1024, length=1, state=5),
    "decode_state_9": dict(batch=8, dim=1024, length=1, state=9),
    "short_3_state_12_odd_dim": dict(batch=2, dim=4100, length=3, state=12),
    "short_16": dict(batch=4, dim=2048, length=16, state=16),
    "groups": dict(batch=8, dim=1024, length=2, state=16, groups_b=2, groups_c=4),
    "no_optional": dict(batch=8, dim=1024, length=1, state=16, present=()),
    "channels_last": dict(batch=8, dim=1024, length=4, state=16, layout=1),
}


decode_scan = switch_fixture("mamba_export_ops_set_decode_scan", CHANNEL)


@pytest.mark.parametrize("delta_softplus", [True, False])
@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_channel_kernel_gives_the_lane_bits(cuda_library, decode_scan, case, io_dtype, delta_softplus):
    check_modes_agree(decode_scan, (LANES, CHANNEL), lambda: scan_cuda.check_parity(
        cuda_library, io_dtype, delta_softplus, seed=5, **CASES[case]), SCAN_OUTPUTS)


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("seed", [6, 7])
def test_channel_kernel_reads_packed_inputs(cuda_library, decode_scan, io_dtype, seed):
    """B and C from one x_proj output, z from the in_proj output, as the lean graph feeds them."""
    decode_scan(CHANNEL)
    scan_cuda.check_packed_decode(cuda_library, io_dtype, seed)


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("case", [dict(batch=16, dim=1536, length=1, state=16, rank=48, layer=True),
                                  dict(batch=8, dim=1024, length=3, state=5, rank=33),
                                  dict(batch=8, dim=1024, length=1, state=16, rank=4, present=())])
def test_channel_kernel_projects_delta_with_the_lane_bits(cuda_library, decode_scan, io_dtype, case):
    check_modes_agree(decode_scan, (LANES, CHANNEL), lambda: projected.run_projected(cuda_library, io_dtype, **case),
                      SCAN_OUTPUTS)


@pytest.mark.parametrize(("case", "kernel"), [
    (dict(batch=8, dim=1024, length=1, state=16), "ChannelScanKernel"),
    (dict(batch=8, dim=1024, length=16, state=16, layout=1), "ChannelScanKernel"),
    (dict(batch=4, dim=64, length=1, state=16), "SequentialScanKernel"),  # too few rows
    (dict(batch=8, dim=1024, length=1, state=32), "SequentialScanKernel"),  # N above 16
])
def test_channel_kernel_runs_where_it_applies(cuda_library, decode_scan, case, kernel, tmp_path):
    from torch.profiler import ProfilerActivity, profile

    decode_scan(CHANNEL)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        scan_cuda.check_parity(cuda_library, "float32", True, **case)
    prof.export_chrome_trace(str(tmp_path / "trace.json"))
    events = json.loads((tmp_path / "trace.json").read_text()).get("traceEvents", [])
    names = {e["name"] for e in events if e.get("cat") == "kernel" and "ScanKernel" in e.get("name", "")}
    assert names and all(kernel in name for name in names), names


def test_unknown_mode_is_refused(cuda_library):
    check_unknown_mode_is_refused(cuda_library, "mamba_export_ops_set_decode_scan")
