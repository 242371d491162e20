"""Packed inputs on the CUDA kernels, mirroring test_packed_inputs_cpu.py: SelectiveScan's
b_offset / c_offset / z_offset and CausalConv1d's x_offset read windows of wider tensors
with NaN around them (packed_cases.py), and must give the bits of the plain run on the
same GPU; the plain run is held to the float64 reference with the CUDA tests' tolerances.
Shapes reach both scan paths (sequential L <= 16, chunked with 4, 8 and 16 steps per
lane) and both sides of the conv's 32-step chunk and 128-channel block."""

from __future__ import annotations

import pytest
import test_causal_conv_cuda as conv_cuda
import test_selective_scan_cuda as scan_cuda
from conv_cases import check_parity as check_conv_parity
from conv_cases import fuzzed_cases as conv_cases
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packed_cases import check_packed_conv, check_packed_scan

pytestmark = pytest.mark.gpu

cuda_library = scan_cuda.cuda_library
DTYPES = scan_cuda.DTYPES


def _scan(library, case, io_dtype, shared_bc):
    inputs, _, y, last_state = scan_cuda.check_parity(library, io_dtype, True, **case)
    check_packed_scan(lambda model: scan_cuda.cuda_session(model, library), inputs, (y, last_state), io_dtype,
                      True, case["seed"], shared_bc)


@st.composite
def packed_scan_cases(draw):
    """Channels-last ungrouped cases over both kernel paths."""
    length = draw(st.one_of(st.integers(0, 16), st.integers(17, 300)))
    return dict(batch=draw(st.integers(1, 3)), dim=draw(st.integers(1, 70)), length=length,
                state=draw(st.integers(1, 20)),
                present=tuple(n for n in ("D", "z", "delta_bias", "initial_state") if draw(st.booleans())),
                seed=draw(st.integers(0, 2**31 - 1)), layout=1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=packed_scan_cases(), io_dtype=st.sampled_from(DTYPES), shared_bc=st.booleans())
def test_fuzzed_packed_scan_gives_the_plain_bits(cuda_library, case, io_dtype, shared_bc):
    _scan(cuda_library, case, io_dtype, shared_bc)


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("length", [1, 2048], ids=["decode", "prefill"])
def test_packed_scan_on_a_layer_of_mamba_130m(cuda_library, io_dtype, length):
    """One layer of mamba-130m as the lean graph feeds it: B and C from one x_proj output, z
    the second half of the in_proj output."""
    case = dict(batch=16 if length == 1 else 1, dim=1536, length=length, state=16, seed=5, layout=1)
    _scan(cuda_library, case, io_dtype, shared_bc=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=conv_cases(lengths=st.integers(0, 70), channels=st.integers(1, 300)),
       activation=st.sampled_from([0, 1]), io_dtype=st.sampled_from(DTYPES))
def test_fuzzed_packed_conv_gives_the_plain_bits(cuda_library, case, activation, io_dtype):
    compute = conv_cuda.on_cuda(cuda_library, io_dtype, case["present"])
    inputs, plain = check_conv_parity(compute, io_dtype, activation, **case)
    check_packed_conv(lambda model: scan_cuda.cuda_session(model, cuda_library), inputs, plain, io_dtype,
                      activation, case["seed"])


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("length", [1, 2048], ids=["decode", "prefill"])
@pytest.mark.parametrize("lead", [0, 1536, None], ids=["x_first", "x_second", "random"])
def test_packed_conv_on_a_layer_of_mamba_130m(cuda_library, io_dtype, length, lead):
    """x as the first half of mamba-130m's in_proj output (B, L, 2 x 1536), as the lean graph
    feeds it (x first; the kernel moves several channels a word where the row allows), as the
    second half, and at a random offset, which leaves the rows unaligned (one channel a thread):
    the plain run's bits each time."""
    case = dict(batch=16 if length == 1 else 1, length=length, channels=1536, width=4, seed=9)
    compute = conv_cuda.on_cuda(cuda_library, io_dtype, ("bias", "conv_state", "mask"))
    inputs, plain = check_conv_parity(compute, io_dtype, 1, **case)
    tail = None if lead is None else 3072 - 1536 - lead
    check_packed_conv(lambda model: scan_cuda.cuda_session(model, cuda_library), inputs, plain, io_dtype, 1,
                      case["seed"], lead, tail)
