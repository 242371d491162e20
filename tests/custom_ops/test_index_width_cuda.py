"""The index arithmetic of the short-sequence (decode) scan (selective_scan/cuda_sequential.cuh)
and of the causal conv (causal_conv/cuda.cu): 32-bit where every offset of a call fits (the
default), 64-bit always when the library's mamba_export_ops_set_wide_index
(common/index_width.h) asks for it. The 64-bit kernels are what tensors too large for 32-bit
offsets take; tests cannot allocate those, so the switch runs them here. Both must give the same
bits (only integers change), hold to the float64 reference, read packed windows, groups and the
projected delta the same way, and be the kernels that ran (the CUDA trace names the index
type)."""

from __future__ import annotations

import json

import pytest
import test_causal_conv_cuda as conv_cuda
import test_projected_delta_cuda as projected
import test_selective_scan_cuda as scan_cuda
from conv_cases import ALL_OPTIONAL, check_parity
from library_switches import SCAN_OUTPUTS, check_modes_agree, check_unknown_mode_is_refused, switch_fixture
from packed_cases import check_packed_conv

pytestmark = pytest.mark.gpu

cuda_library = scan_cuda.cuda_library
DTYPES = scan_cuda.DTYPES
FITS, WIDE = 0, 1

# Decode at mamba-130m's batch 32, the short lengths this path takes, every lane count (N from
# 1 to 128: one to 32 lanes a row), a partial block of channels, groups (the division the
# ungrouped form skips), absent optional inputs, both layouts.
CASES = {
    "decode_130m_b32": dict(batch=32, dim=1536, length=1, state=16),
    "decode_b1": dict(batch=1, dim=768, length=1, state=16),
    "state_1": dict(batch=3, dim=100, length=1, state=1),
    "state_9": dict(batch=5, dim=130, length=2, state=9),
    "state_128": dict(batch=2, dim=40, length=3, state=128),
    "short_16_odd_dim": dict(batch=3, dim=4100, length=16, state=16),
    "groups": dict(batch=4, dim=256, length=2, state=16, groups_b=2, groups_c=4),
    "no_optional": dict(batch=4, dim=512, length=1, state=16, present=()),
    "channels_last": dict(batch=8, dim=1024, length=4, state=16, layout=1),
}

index_width = switch_fixture("mamba_export_ops_set_wide_index", FITS)


@pytest.mark.parametrize("delta_softplus", [True, False])
@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_scan_32_and_64_bit_indices_give_the_same_bits(cuda_library, index_width, case, io_dtype, delta_softplus):
    check_modes_agree(index_width, (FITS, WIDE), lambda: scan_cuda.check_parity(
        cuda_library, io_dtype, delta_softplus, seed=11, **CASES[case]), SCAN_OUTPUTS)


@pytest.mark.parametrize("mode", [FITS, WIDE])
@pytest.mark.parametrize("io_dtype", DTYPES)
def test_scan_reads_packed_windows_either_way(cuda_library, index_width, mode, io_dtype):
    """B and C from one x_proj output and z from the in_proj output, as the lean graph feeds them."""
    index_width(mode)
    scan_cuda.check_packed_decode(cuda_library, io_dtype, seed=12)


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("case", [dict(batch=16, dim=1536, length=1, state=16, rank=48, layer=True),
                                  dict(batch=8, dim=1024, length=3, state=5, rank=33),
                                  dict(batch=8, dim=1024, length=1, state=16, rank=4, present=())])
def test_scan_projects_delta_alike_either_way(cuda_library, index_width, io_dtype, case):
    check_modes_agree(index_width, (FITS, WIDE), lambda: projected.run_projected(cuda_library, io_dtype, **case),
                      SCAN_OUTPUTS)


# Decode at mamba-130m's batch 32, one and several chunks, the word path (16-step chunks of 4
# channels), a generic width, L = 0 (the state passed through), no optional inputs.
CONV_CASES = {
    "decode_130m_b32": dict(batch=32, length=1, channels=1536, width=4),
    "prefill_chunks": dict(batch=2, length=100, channels=130, width=4),
    "word_path": dict(batch=2, length=33, channels=516, width=4),
    "width_6_generic": dict(batch=3, length=40, channels=33, width=6),
    "length_0": dict(batch=2, length=0, channels=64, width=4),
    "no_optional": dict(batch=2, length=40, channels=128, width=4, present=()),
}


@pytest.mark.parametrize("activation", [0, 1], ids=["none", "silu"])
@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_32_and_64_bit_indices_give_the_same_bits(cuda_library, index_width, case, io_dtype, activation):
    args = CONV_CASES[case]
    compute = conv_cuda.on_cuda(cuda_library, io_dtype, args.get("present", ALL_OPTIONAL))
    check_modes_agree(index_width, (FITS, WIDE), lambda: check_parity(compute, io_dtype, activation, **args)[1],
                      {"y": 0, "new_conv_state": 1})


@pytest.mark.parametrize("mode", [FITS, WIDE])
@pytest.mark.parametrize("io_dtype", DTYPES)
def test_conv_reads_a_packed_window_either_way(cuda_library, index_width, mode, io_dtype):
    """x as the first half of the in_proj output, as the lean graph feeds it."""
    index_width(mode)
    compute = conv_cuda.on_cuda(cuda_library, io_dtype, ALL_OPTIONAL)
    inputs, plain = check_parity(compute, io_dtype, 1, batch=4, length=1, channels=768, width=4, seed=13)
    check_packed_conv(lambda model: scan_cuda.cuda_session(model, cuda_library), inputs, plain, io_dtype, 1,
                      seed=13, lead=0, tail=768)


@pytest.mark.parametrize(("mode", "index_type"), [(FITS, "int"), (WIDE, "long")])
def test_the_mode_asked_for_is_the_kernel_that_runs(cuda_library, index_width, mode, index_type, tmp_path):
    from torch.profiler import ProfilerActivity, profile

    conv = conv_cuda.on_cuda(cuda_library, "float16", ALL_OPTIONAL)
    index_width(mode)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        scan_cuda.check_parity(cuda_library, "float16", True, batch=4, dim=64, length=1, state=16)
        check_parity(conv, "float16", 1, batch=4, length=1, channels=64, width=4)
    prof.export_chrome_trace(str(tmp_path / "trace.json"))
    events = json.loads((tmp_path / "trace.json").read_text()).get("traceEvents", [])
    ours = {e["name"] for e in events if e.get("cat") == "kernel"
            and ("SequentialScanKernel" in e.get("name", "") or "CausalConvKernel" in e.get("name", ""))}
    assert any("SequentialScanKernel" in name for name in ours) and any("CausalConvKernel" in name for name in ours)
    assert all(f", {index_type}>" in name for name in ours), ours


def test_unknown_setting_is_refused(cuda_library):
    check_unknown_mode_is_refused(cuda_library, "mamba_export_ops_set_wide_index")
