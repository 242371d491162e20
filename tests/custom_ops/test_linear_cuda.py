"""Parity of the CUDA kernels of Linear, run through ONNX Runtime's CUDA provider.

Each call takes the path the contract's cuda_path names: the matrix-vector kernel (16-byte pieces
where K fills them and the tensors are aligned, single values otherwise; the weight read before
the wait when it is an initializer, after it when it is a graph input), the tensor-core kernel
(float16 and bfloat16; 32 columns a block up to TILE_WIDE_ROWS rows, 16 past them; row and column
tiles partly filled, K ending inside a step) or cuBLAS, found in the process at run time. The
cases reach every path in every dtype that has it (test_cases_reach_every_path). Inputs and
outputs stay on the GPU; y is filled with NaN before each run, so an element the kernel forgets
to write fails the check. Tolerances and the error measure:
linear_cases.py. Every case runs with dependent launches on and off (the process-wide switch
of common/dependent_launch.h): the same bits either way.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import test_selective_scan_cuda as scan_cuda
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from linear_cases import TOLERANCE, check_parity, make_inputs, reference, run
from scan_cases import relative_error

from mamba_export.ops.linear import TILE_DTYPES, TILE_ROWS, TILE_WIDE_ROWS, cuda_path
from tests.support.one_linear_node import linear_model

pytestmark = pytest.mark.gpu

cuda_library = scan_cuda.cuda_library
CUDA_PROVIDER, cuda_session, to_cuda = scan_cuda.CUDA_PROVIDER, scan_cuda.cuda_session, scan_cuda.to_cuda

DTYPES = tuple(TOLERANCE)

CASES = {
    # the matrix-vector kernel (float32 up to 4 rows; half precision one row of a small weight), the
    # tensor-core kernel in half precision past that: mamba-130m's and 1.4b's products at batch 1 to 4
    "in_proj_130m_b1": dict(shape=(1, 1, 768), outer=3072),
    "x_proj_130m_b2": dict(shape=(2, 1, 1536), outer=80),
    "dt_proj_130m_b3": dict(shape=(3, 1, 80), outer=1536),
    "out_proj_130m_b4": dict(shape=(4, 1, 1536), outer=768),
    "in_proj_1.4b_b1": dict(shape=(1, 1, 2048), outer=8192),
    "out_proj_1.4b_b1": dict(shape=(1, 4096), outer=2048),
    "head_130m_b1": dict(shape=(1, 768), outer=50280),
    "x_proj_130m_b1": dict(shape=(1, 1, 1536), outer=80),
    "odd_inner_13": dict(shape=(2, 13), outer=33),  # single values: K fills no 16-byte piece
    "inner_1": dict(shape=(1, 1), outer=5),
    "one_piece": dict(shape=(3, 8), outer=300),
    "rank_1": dict(shape=(40,), outer=7),
    # the tensor-core kernel in float16 and bfloat16 (cuBLAS in float32)
    "rows_5": dict(shape=(5, 64), outer=24),
    "decode_b16_in_proj_1.4b": dict(shape=(16, 1, 2048), outer=8192),  # 32 columns a block, a large weight
    "decode_b16_x_proj": dict(shape=(16, 1, 1536), outer=80),  # one row tile, full
    "decode_b17_dt_proj": dict(shape=(17, 1, 48), outer=1536),  # two row tiles; K ends inside a step
    "x_proj_1.4b_b4": dict(shape=(4, 1, 4096), outer=160),  # 5 column blocks: K split over a cluster of 8
    "x_proj_1.4b_b1": dict(shape=(1, 1, 4096), outer=160),  # one row, narrow and deep: the split tensor-core kernel
    "out_proj_1.4b_b1_3d": dict(shape=(1, 1, 4096), outer=2048),  # one row of 16 MiB: the matrix-vector kernel
    "x_proj_b20": dict(shape=(20, 1, 1536), outer=80),  # 16 columns a block, two row tiles, K split
    "split_uneven": dict(shape=(3, 1, 1000), outer=40),  # 32 steps split 8 ways, K ends inside a step
    "decode_b32": dict(shape=(32, 1, 768), outer=3072),
    "head_130m_b8": dict(shape=(8, 768), outer=50280),  # N not a multiple of 16
    "inner_8_outer_33": dict(shape=(12, 8), outer=33),
    "large_weight_2_rows": dict(shape=(2, 1, 2048), outer=4100),  # 8.4 M weights: over 8 MiB in every dtype
    # cuBLAS
    "prefill_512": dict(shape=(1, 512, 1536), outer=768),
    "rows_33": dict(shape=(33, 1, 768), outer=96),
    "decode_b32_out_proj_1.4b": dict(shape=(32, 1, 4096), outer=2048),  # past 16 rows, a large weight
    "rank_4": dict(shape=(2, 3, 4, 5), outer=6),
    "cublas_odd_inner": dict(shape=(9, 13), outer=17),
}


def _path(spec, io_dtype):
    shape = spec["shape"]
    return cuda_path(int(np.prod(shape[:-1])), shape[-1], spec["outer"], io_dtype)


@pytest.mark.parametrize("io_dtype", DTYPES)
def test_cases_reach_every_path(io_dtype):
    paths = {_path(spec, io_dtype) for spec in CASES.values()}
    assert paths == ({"vector", "tile", "cublas"} if io_dtype in TILE_DTYPES else {"vector", "cublas"})


@pytest.fixture(params=[False, True], ids=["plain_launch", "dependent_launch"])
def dependent_launch(request, cuda_library):
    library = ctypes.CDLL(cuda_library)
    previous = library.mamba_export_ops_set_dependent_launch(int(request.param))
    assert previous in (0, 1)
    yield request.param
    library.mamba_export_ops_set_dependent_launch(previous)


def on_cuda(library, io_dtype, rank, constant):
    """compute(inputs) through a CUDA-only session, on device tensors."""
    import torch
    from onnx import TensorProto

    onnx_type = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: TensorProto.BFLOAT16}

    def compute(inputs):
        weight = inputs["weight"] if constant else None
        session = cuda_session(linear_model(io_dtype, rank=rank, weight=weight), library)
        tensors = {name: to_cuda(value) for name, value in inputs.items() if constant is False or name == "x"}
        x = tensors["x"]
        shape = tuple(x.shape[:-1]) + (inputs["weight"].shape[0],)
        if x.numel() == 0 or int(np.prod(shape)) == 0:
            return run(session, inputs)  # empty tensors have no device address to bind
        y = torch.full(shape, float("nan"), dtype=x.dtype, device="cuda")
        binding = session.io_binding()
        for name, tensor in tensors.items():
            binding.bind_input(name, "cuda", 0, onnx_type[tensor.dtype], list(tensor.shape), tensor.data_ptr())
        binding.bind_output("y", "cuda", 0, onnx_type[y.dtype], list(y.shape), y.data_ptr())
        torch.cuda.synchronize()
        session.run_with_iobinding(binding)
        torch.cuda.synchronize()
        return y.float().cpu().numpy()
    return compute


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("constant", [True, False], ids=["initializer", "graph_input"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(cuda_library, dependent_launch, case, constant, io_dtype):
    spec = CASES[case]
    check_parity(on_cuda(cuda_library, io_dtype, len(spec["shape"]), constant), io_dtype, **spec)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(io_dtype=st.sampled_from(DTYPES), rows=st.integers(0, TILE_ROWS + 3),
       inner=st.sampled_from([0, 1, 7, 8, 16, 24, 80, 129, 768]), outer=st.integers(0, 700),
       constant=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_fuzzed_shapes(cuda_library, io_dtype, rows, inner, outer, constant, seed):
    check_parity(on_cuda(cuda_library, io_dtype, 2, constant), io_dtype, shape=(rows, inner), outer=outer,
                 seed=seed)


@pytest.mark.parametrize("rows", [1, 3, 24], ids=["vector", "tile_wide", "tile_narrow"])
def test_dependent_launches_change_no_bit(cuda_library, rows):
    """The wait, the early weight read and the release of the next kernel move no sum."""
    inputs = make_inputs(shape=(rows, 1536), outer=768, io_dtype="float16", seed=4)
    library = ctypes.CDLL(cuda_library)
    results = []
    for on in (0, 1):
        previous = library.mamba_export_ops_set_dependent_launch(on)
        try:
            results.append(on_cuda(cuda_library, "float16", 2, True)(inputs))
        finally:
            library.mamba_export_ops_set_dependent_launch(previous)
    np.testing.assert_array_equal(results[0], results[1])


def test_cpu_and_cuda_agree_within_the_tolerance(cuda_library, make_session):
    inputs = make_inputs(shape=(2, 1536), outer=80, io_dtype="bfloat16", seed=9)
    on_gpu = on_cuda(cuda_library, "bfloat16", 2, True)(inputs).astype(np.float64)
    on_cpu = run(make_session(linear_model("bfloat16", weight=inputs["weight"])), inputs).astype(np.float64)
    assert np.max(np.abs(on_gpu - on_cpu)) <= TOLERANCE["bfloat16"] * np.max(np.abs(on_cpu))


@pytest.mark.parametrize("rows", [1, 4, TILE_WIDE_ROWS, TILE_ROWS, 64],
                         ids=["vector", "tile_4", "tile_wide", "tile_narrow", "cublas"])
def test_replays_inside_a_cuda_graph(cuda_library, rows):
    """Every path runs on ORT's stream and allocate nothing per call (cuBLAS's handle and its
    workspace are made on the stream's first, uncaptured call), so ORT can capture the node in a
    CUDA graph; replays on new x give their product."""
    import onnxruntime as ort
    import torch

    case = dict(shape=(rows, 1536), outer=768)
    first = make_inputs(**case, io_dtype="float16", seed=1)
    options = ort.SessionOptions()
    options.register_custom_ops_library(cuda_library)
    session = ort.InferenceSession(linear_model("float16", weight=first["weight"]).SerializeToString(), options,
                                   providers=[(CUDA_PROVIDER, {"enable_cuda_graph": "1"})])
    x = to_cuda(first["x"])
    y = torch.full((rows, 768), float("nan"), dtype=torch.float16, device="cuda")
    binding = session.io_binding()
    binding.bind_input("x", "cuda", 0, np.float16, list(x.shape), x.data_ptr())
    binding.bind_output("y", "cuda", 0, np.float16, list(y.shape), y.data_ptr())
    for _ in range(3):  # ORT runs the graph normally a few times, then captures it
        torch.cuda.synchronize()
        session.run_with_iobinding(binding)
    for seed in (2, 3):
        inputs = make_inputs(**case, io_dtype="float16", seed=seed)
        inputs["weight"] = first["weight"]
        x.copy_(to_cuda(inputs["x"]))
        y.fill_(float("nan"))

        torch.cuda.synchronize()
        session.run_with_iobinding(binding)
        torch.cuda.synchronize()
        error = relative_error(y.float().cpu().numpy(), reference(inputs))
        assert error <= TOLERANCE["float16"], f"replay {seed}: relative error {error:.3g}"


def test_bad_input_is_an_ort_error_and_the_session_survives(cuda_library):
    session = cuda_session(linear_model(shaped=False), cuda_library)
    inputs = make_inputs()
    with pytest.raises(Exception, match=r"Linear: weight is \(24, 15\), expected \(N, 16\)"):
        session.run(None, dict(inputs, weight=inputs["weight"][:, :15]))
    check_parity(lambda feeds: run(session, feeds), "float32")
