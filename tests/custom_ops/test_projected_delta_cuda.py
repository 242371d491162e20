"""The projected delta (delta_weight, delta_offset) on the CUDA kernels, through ONNX Runtime's
CUDA provider with inputs and outputs on the GPU (outputs NaN-filled before each run).

Decode and short sequences (L <= 16) take the sequential kernel, which sums delta_weight[d, :] .
x_dt over a channel's lanes; longer ones take a projection kernel into float32 scratch memory and
then the chunked kernel, strided or staged (cuda_loads.h). Every path is held to the float64
reference with the plain scan's tolerances (test_selective_scan_cuda.py): the projection is in
float32 and never rounded to the I/O dtype.
"""

from __future__ import annotations

import numpy as np
import pytest
import test_selective_scan_cuda as scan_cuda
import test_selective_scan_cuda_staged as staged
from projected_cases import make_projected, projected_model, projected_reference
from scan_cases import relative_error

from mamba_export.ops.selective_scan import check_inputs, project_delta

pytestmark = pytest.mark.gpu

cuda_library = scan_cuda.cuda_library
scan_loads = staged.scan_loads
DTYPES = scan_cuda.DTYPES

CASES = {
    # sequential path (L <= 16, N <= 128)
    "decode_130m": dict(batch=16, dim=1536, length=1, state=16, rank=48, layer=True),
    "decode_batch_1": dict(batch=1, dim=768, length=1, state=16, rank=48, layer=True),
    "decode_window": dict(batch=4, dim=40, length=1, state=16, rank=7),
    "short_5": dict(batch=3, dim=24, length=5, state=16, rank=5),
    "short_16_state_5": dict(batch=2, dim=12, length=16, state=5, rank=33),
    "short_state_128": dict(batch=2, dim=8, length=2, state=128, rank=3),
    "short_no_optional": dict(batch=2, dim=8, length=3, state=16, rank=4, present=()),
    # projection kernel, then the chunked kernels
    "chunked_17": dict(batch=2, dim=8, length=17, state=16, rank=3),
    "chunked_200_layer": dict(batch=1, dim=64, length=200, state=16, rank=8, layer=True),
    "chunked_2048_130m": dict(batch=1, dim=1536, length=2048, state=16, rank=48, layer=True),
    "chunked_odd_dim": dict(batch=2, dim=13, length=70, state=16, rank=6),
    "chunked_state_20": dict(batch=2, dim=8, length=300, state=20, rank=5),
    "chunked_state_200_decode": dict(batch=2, dim=4, length=1, state=200, rank=3),
    "chunked_rank_300": dict(batch=1, dim=16, length=40, state=16, rank=300),
    # rows of 600 floats: 20 steps a projection block fit 48 KiB (32 otherwise); 130 channels: two blocks
    "chunked_rank_600": dict(batch=2, dim=130, length=45, state=16, rank=600),
    "chunked_no_optional": dict(batch=2, dim=8, length=70, state=16, rank=4, present=()),
}


def run_projected(library, io_dtype: str, seed: int = 3, **case):
    """One projected case on the GPU -> (inputs, offsets, y, last_state), held to the reference."""
    inputs, offsets = make_projected(io_dtype=io_dtype, seed=seed, **case)
    session = scan_cuda.cuda_session(projected_model(io_dtype, inputs, offsets), library)
    tensors = {name: scan_cuda.to_cuda(value) for name, value in inputs.items()}
    y, last_state = (scan_cuda.as_float64(t) for t in scan_cuda.run_on_device(session, tensors))
    ref_y, ref_state = projected_reference(inputs, offsets)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(last_state)), "an output was not written, or NaN read"
    y_error, state_error = relative_error(y, ref_y), relative_error(last_state, ref_state)
    assert y_error <= scan_cuda.Y_TOLERANCE[io_dtype], f"y relative error {y_error:.3g}"
    assert state_error <= scan_cuda.STATE_TOLERANCE, f"last_state relative error {state_error:.3g}"
    return inputs, offsets, y, last_state


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_projected_delta_matches_the_reference(cuda_library, case, io_dtype):
    run_projected(cuda_library, io_dtype, **CASES[case])


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("case", ["chunked_17", "chunked_200_layer", "chunked_2048_130m", "chunked_state_20"])
def test_projected_delta_gives_the_same_bits_staged_and_strided(cuda_library, scan_loads, case, io_dtype):
    """Both chunked kernels read the float32 projection the same way (from global memory)."""
    scan_loads(staged.STRIDED)
    strided = run_projected(cuda_library, io_dtype, **CASES[case])
    scan_loads(staged.STAGED)
    staged_run = run_projected(cuda_library, io_dtype, **CASES[case])
    np.testing.assert_array_equal(staged_run[2], strided[2], err_msg="y")
    np.testing.assert_array_equal(staged_run[3], strided[3], err_msg="last_state")


@pytest.mark.parametrize("length", [1, 16, 17, 300])
def test_projected_equals_the_plain_kernel_fed_the_projected_delta(cuda_library, length):
    """float32 I/O: the plain kernel on delta = x_dt @ delta_weight.T gives the projected run's
    values within float32 rounding (only the order of the R products differs)."""
    from support.one_node import selective_scan_model

    inputs, offsets, y, last_state = run_projected(cuda_library, "float32", batch=2, dim=64, length=length,
                                                   state=16, rank=12)
    dims = check_inputs({k: v.shape for k, v in inputs.items()}, layout=1, offsets=offsets)
    plain = {k: v for k, v in inputs.items() if k != "delta_weight"}
    plain["delta"] = project_delta(inputs, offsets, dims).astype(np.float32)
    model = selective_scan_model("float32", delta_softplus=1, layout=1)
    session = scan_cuda.cuda_session(model, cuda_library)
    tensors = {name: scan_cuda.to_cuda(value) for name, value in plain.items()}
    plain_y, plain_state = (scan_cuda.as_float64(t) for t in scan_cuda.run_on_device(session, tensors))
    assert relative_error(y, plain_y) <= 1e-6
    assert relative_error(last_state, plain_state) <= 1e-6


@pytest.mark.parametrize("length", [1, 300])
def test_projected_repeated_runs_give_identical_bits(cuda_library, length):
    """No races in the in-kernel sum nor in the scratch memory between runs."""
    inputs, offsets = make_projected(batch=2, dim=64, length=length, state=16, rank=12, seed=9)
    session = scan_cuda.cuda_session(projected_model("float32", inputs, offsets), cuda_library)
    first = session.run(None, inputs)
    second = session.run(None, inputs)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_projected_bad_offset_is_an_ort_error_and_the_session_survives(cuda_library):
    inputs, offsets = make_projected(batch=2, dim=8, length=20, state=4, rank=3, seed=1)
    session = scan_cuda.cuda_session(projected_model("float32", inputs, offsets), cuda_library)
    bad = dict(inputs, delta=inputs["delta"][:, :, :offsets["delta_offset"] + 2])
    with pytest.raises(Exception, match="needs W >="):
        session.run(None, bad)
    y, _ = session.run(None, inputs)
    assert np.all(np.isfinite(y))
