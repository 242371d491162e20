"""Parity of the CUDA kernel of SelectiveScan, run through ONNX Runtime's CUDA provider.

Inputs and outputs stay on the GPU (IO binding to torch CUDA tensors); outputs
are filled with NaN before each run so an element the kernel forgets to write
fails the check. Every result is compared with the float64 reference scan on the
same (already rounded) inputs and, where Triton runs, with our Triton kernel.

Tolerances (relative error max|out - ref| / max|ref|, scan_cases.relative_error):
- last_state, float32 for every I/O dtype: 1e-5 (float32 arithmetic only; the
  kernel's exp2-based decay is within 2 ulp of exp).
- y: float32 1e-5; float16 5e-3 (rounding y to float16 alone costs up to 4.9e-4);
  bfloat16 2^-7 (rounding to bfloat16 alone costs up to 2^-9, so a 4x margin).

Shapes are chosen to reach both kernel paths (test_each_path_is_reached checks
which kernel ran): sequential (L <= 16, N <= 128) and chunked with 4, 8 and 16
steps per lane (L <= 128, <= 256, longer), with whole and partial tiles and
blocks, aligned and unaligned rows, few and many channels.
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scan_cases import ALL_OPTIONAL, fuzzed_cases, make_inputs, reference, relative_error, run
from support.one_node import selective_scan_model

pytestmark = pytest.mark.gpu

Y_TOLERANCE = {"float32": 1e-5, "float16": 5e-3, "bfloat16": 2.0**-7}
STATE_TOLERANCE = 1e-5
DTYPES = tuple(Y_TOLERANCE)
CUDA_PROVIDER = "CUDAExecutionProvider"
CUDA_BUILD_DIR = Path(__file__).resolve().parents[2] / "build" / "custom_ops_cuda"

CASES = {
    # sequential path
    "decode_batch_64": dict(batch=64, dim=32, length=1, state=16),
    "decode_no_optional": dict(batch=8, dim=16, length=1, state=16, present=()),
    "short_16": dict(batch=3, dim=8, length=16, state=16),
    "short_groups": dict(batch=2, dim=8, length=5, state=16, groups_b=2, groups_c=4),
    "short_state_5": dict(batch=2, dim=6, length=3, state=5),
    "short_state_128": dict(batch=2, dim=4, length=2, state=128),
    # chunked path, 4 / 8 / 16 steps per lane
    "chunked_17_unaligned": dict(batch=2, dim=6, length=17, state=16),
    "chunked_128": dict(batch=2, dim=4, length=128, state=16),
    "chunked_200": dict(batch=1, dim=5, length=200, state=16),
    "chunked_2125_b1": dict(batch=1, dim=8, length=2125, state=16),
    "chunked_2048_b1": dict(batch=1, dim=8, length=2048, state=16),
    "chunked_groups": dict(batch=2, dim=12, length=300, state=16, groups_b=3, groups_c=12),
    "chunked_state_1": dict(batch=1, dim=4, length=100, state=1),
    "chunked_state_64": dict(batch=1, dim=4, length=64, state=64),
    "chunked_state_200_decode": dict(batch=2, dim=4, length=1, state=200),
    "chunked_no_D": dict(length=70, present=("z", "delta_bias", "initial_state")),
    "chunked_no_z": dict(length=70, present=("D", "delta_bias", "initial_state")),
    "chunked_no_bias": dict(length=70, present=("D", "z", "initial_state")),
    "chunked_no_initial": dict(length=70, present=("D", "z", "delta_bias")),
    "chunked_no_optional": dict(length=70, present=()),
    # many channels (grids of thousands of warps)
    "wide_300": dict(batch=2, dim=512, length=300, state=16),
    "wide_unaligned_77": dict(batch=1, dim=1024, length=77, state=16),
    "wide_odd_channels": dict(batch=1, dim=1025, length=40, state=16),
    "wide_state_5": dict(batch=4, dim=512, length=40, state=5),
    "wide_state_3": dict(batch=8, dim=512, length=33, state=3),
    "wide_groups": dict(batch=2, dim=512, length=64, state=16, groups_b=4, groups_c=8),
    "wide_no_optional": dict(batch=2, dim=512, length=50, state=16, present=()),
    "empty_batch": dict(batch=0, length=40),
    "empty_dim": dict(dim=0, length=40),
}


def _unavailable_reason() -> str | None:
    try:
        import onnxruntime as ort
        import torch
    except ImportError as error:
        return f"needs onnxruntime and torch: {error}"
    if CUDA_PROVIDER not in ort.get_available_providers():
        return (f"onnxruntime {ort.__version__} has no {CUDA_PROVIDER} "
                f"(has {', '.join(ort.get_available_providers())}); install onnxruntime-gpu")
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU"
    return None


@pytest.fixture(scope="module")
def cuda_library() -> str:
    reason = _unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    import onnxruntime as ort

    from mamba_export.runtime.library import ENV_VAR, build_library, get_library_path

    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # the CUDA libraries of the pip-installed nvidia packages
    if os.environ.get(ENV_VAR):
        return get_library_path()
    return build_library(cuda=True, build_dir=str(CUDA_BUILD_DIR))


def cuda_session(model, library: str, profile_prefix: str | None = None):
    """A session that must place every node on the CUDA provider, else it is refused."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.register_custom_ops_library(library)
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model.SerializeToString(), options, providers=[CUDA_PROVIDER])


def to_cuda(array: np.ndarray):
    import torch

    if array.dtype.name == "bfloat16":  # ml_dtypes: torch cannot read it directly
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16).cuda()
    return torch.from_numpy(np.ascontiguousarray(array)).cuda()


def run_on_device(session, tensors: dict):
    """Bind device tensors, run, and return (y, last_state) as torch CUDA tensors."""
    import torch
    from onnx import TensorProto

    # numpy types where numpy has one; bfloat16 by its ONNX type number.
    onnx_type = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: TensorProto.BFLOAT16}
    u = tensors["u"]
    dim, state = tensors["A"].shape  # D from A: u is (B, D, L) or, channels last, (B, L, D)
    y = torch.full_like(u, float("nan"))
    last_state = torch.full((u.shape[0], dim, state), float("nan"), device=u.device)
    binding = session.io_binding()
    for name, tensor in tensors.items():
        binding.bind_input(name, "cuda", tensor.device.index or 0, onnx_type[tensor.dtype],
                           list(tensor.shape), tensor.data_ptr())
    for name, tensor in (("y", y), ("last_state", last_state)):
        binding.bind_output(name, "cuda", tensor.device.index or 0, onnx_type[tensor.dtype],
                            list(tensor.shape), tensor.data_ptr())
    torch.cuda.synchronize()
    session.run_with_iobinding(binding)
    torch.cuda.synchronize()
    return y, last_state


def as_float64(tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy().astype(np.float64)


def triton_scan_or_none(tensors: dict, delta_softplus: bool):
    try:
        from mamba_export.kernels.triton_scan import selective_scan
    except ImportError:
        return None
    return selective_scan(**tensors, delta_softplus=delta_softplus)


def check_parity(library, io_dtype, delta_softplus, **case):
    inputs = make_inputs(io_dtype=io_dtype, delta_softplus=delta_softplus, **case)
    present = tuple(name for name in ALL_OPTIONAL if name in inputs)
    layout = case.get("layout", 0)
    model = selective_scan_model(io_dtype, present=present, groups_b=case.get("groups_b", 0),
                                 groups_c=case.get("groups_c", 0), delta_softplus=int(delta_softplus),
                                 layout=layout)
    session = cuda_session(model, library)
    tensors = {name: to_cuda(value) for name, value in inputs.items()}
    if any(t.numel() == 0 for t in tensors.values()):
        y, last_state = run(session, inputs)  # empty tensors have no device address to bind
    else:
        y, last_state = (as_float64(t) for t in run_on_device(session, tensors))
    ref_y, ref_state = reference(inputs, delta_softplus, layout)
    assert y.shape == ref_y.shape and last_state.shape == ref_state.shape
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(last_state)), "an output was not written"
    y_error, state_error = relative_error(y, ref_y), relative_error(last_state, ref_state)
    assert y_error <= Y_TOLERANCE[io_dtype], f"y relative error {y_error:.3g}"
    assert state_error <= STATE_TOLERANCE, f"last_state relative error {state_error:.3g}"
    return inputs, tensors, y, last_state


def check_packed_decode(library, io_dtype, seed):
    """A decode call whose B and C come from one x_proj output and z from the in_proj output, as
    the lean graph feeds them, gives the bits of the same call on separate tensors."""
    from packed_cases import check_packed_scan

    case = dict(batch=8, dim=1024, length=1, state=16, seed=seed, layout=1)
    inputs, _, y, last_state = check_parity(library, io_dtype, True, **case)
    check_packed_scan(lambda model: cuda_session(model, library), inputs, (y, last_state), io_dtype, True, seed,
                      shared_bc=True)


@pytest.mark.parametrize("layout", [0, 1], ids=["channels_first", "channels_last"])
@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("delta_softplus", [False, True], ids=["linear", "softplus"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(cuda_library, case, delta_softplus, io_dtype, layout):
    check_parity(cuda_library, io_dtype, delta_softplus, layout=layout, **CASES[case])


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("length", [1, 2048], ids=["decode", "prefill"])
def test_channels_last_on_mamba_130m_shapes(cuda_library, io_dtype, length):
    """The exported graph's layout (1) on one layer of mamba-130m, both kernel paths."""
    check_parity(cuda_library, io_dtype, True, batch=16 if length == 1 else 1, dim=1536, length=length,
                 state=16, layout=1)


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("length", [1, 2048], ids=["decode", "prefill"])
def test_matches_triton_on_mamba_130m_shapes(cuda_library, io_dtype, length):
    """Both GPU kernels on one layer of mamba-130m (D = 1536, N = 16)."""
    batch = 16 if length == 1 else 1
    inputs, tensors, y, last_state = check_parity(cuda_library, io_dtype, True, batch=batch, dim=1536,
                                                  length=length, state=16)
    triton_out = triton_scan_or_none(tensors, True)
    if triton_out is None:
        pytest.skip("mamba_export.kernels.triton_scan is not importable here")
    # Each side rounds its own float32 result, so they may differ by one unit in the last place.
    assert relative_error(y, as_float64(triton_out[0])) <= 2 * Y_TOLERANCE[io_dtype]
    assert relative_error(last_state, as_float64(triton_out[1])) <= STATE_TOLERANCE


@pytest.mark.parametrize("length", [0, 1, 300])
def test_repeated_runs_give_identical_bits(cuda_library, length):
    """No races: each output element has one writer and a fixed order of sums."""
    case = dict(batch=2, dim=64, length=length, state=16)
    inputs = make_inputs(delta_softplus=True, **case)
    session = cuda_session(selective_scan_model(delta_softplus=1), cuda_library)
    first = session.run(None, inputs)
    second = session.run(None, inputs)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_length_0_returns_initial_state(cuda_library):
    inputs = make_inputs(length=0)
    y, last_state = cuda_session(selective_scan_model(), cuda_library).run(None, inputs)
    assert y.shape == (2, 8, 0)
    np.testing.assert_array_equal(last_state, inputs["initial_state"])


def test_length_0_without_initial_state_returns_zeros(cuda_library):
    inputs = make_inputs(length=0, present=())
    _, last_state = cuda_session(selective_scan_model(present=()), cuda_library).run(None, inputs)
    np.testing.assert_array_equal(last_state, np.zeros((2, 8, 4), np.float32))


def test_node_runs_on_the_cuda_provider(cuda_library, tmp_path):
    """The profile names the provider that ran each node; ours must say CUDA."""
    session = cuda_session(selective_scan_model(), cuda_library, str(tmp_path / "profile"))
    session.run(None, make_inputs(length=40))
    events = json.loads(Path(session.end_profiling()).read_text())
    providers = {event["args"].get("provider") for event in events
                 if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time")
                 and event.get("args", {}).get("op_name") == "SelectiveScan"}
    assert providers == {CUDA_PROVIDER}


def test_bad_input_is_an_ort_error_and_the_session_survives(cuda_library):
    """A shape the contract forbids is refused before any launch; the GPU stays usable."""
    session = cuda_session(selective_scan_model(shaped=False), cuda_library)
    inputs = make_inputs(length=8)
    bad = dict(inputs, delta=inputs["delta"][:, :, :7])
    with pytest.raises(Exception, match="delta"):
        session.run(None, bad)
    y, last_state = session.run(None, inputs)
    ref_y, ref_state = reference(inputs, False)
    assert relative_error(y, ref_y) <= Y_TOLERANCE["float32"]
    assert relative_error(last_state, ref_state) <= STATE_TOLERANCE


# Lengths on both sides of the kernels' tile sizes, so every path and tail is reached.
scan_shapes = partial(fuzzed_cases, lengths=st.sampled_from([1, 2, 7, 16, 17, 33, 128, 129, 256, 257, 600]),
                      states=st.integers(1, 40))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=scan_shapes(), delta_softplus=st.booleans(), io_dtype=st.sampled_from(DTYPES))
def test_fuzzed_shapes_and_values(cuda_library, case, delta_softplus, io_dtype):
    check_parity(cuda_library, io_dtype, delta_softplus, **case)


@st.composite
def wide_shapes(draw):
    """Shapes with over a thousand (batch, channel) rows, so grids span several waves of blocks."""
    batch = draw(st.integers(1, 4))
    dim = 1024 // batch + draw(st.integers(0, 40))
    divisors = [g for g in (1, 2, 3, 4, 8, dim) if dim % g == 0]
    return dict(batch=batch, dim=dim, state=draw(st.integers(1, 16)),
                length=draw(st.sampled_from([17, 31, 64, 100, 129, 300])),
                groups_b=draw(st.sampled_from([0] + divisors)),
                groups_c=draw(st.sampled_from([0] + divisors)),
                present=tuple(name for name in ALL_OPTIONAL if draw(st.booleans())),
                seed=draw(st.integers(0, 2**31 - 1)), layout=draw(st.sampled_from([0, 1])))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=wide_shapes(), delta_softplus=st.booleans(), io_dtype=st.sampled_from(DTYPES))
def test_fuzzed_wide_shapes(cuda_library, case, delta_softplus, io_dtype):
    check_parity(cuda_library, io_dtype, delta_softplus, **case)


@pytest.mark.parametrize("case, kernel", [
    (dict(batch=4, dim=64, length=1, state=16), "SequentialScanKernel"),
    (dict(batch=2, dim=8, length=16, state=128), "SequentialScanKernel"),
    (dict(batch=1, dim=8, length=300, state=16), "ChunkedScanKernel"),
    (dict(batch=2, dim=4, length=1, state=200), "ChunkedScanKernel"),
    (dict(batch=4, dim=64, length=1, state=16, layout=1), "SequentialScanKernel"),
    (dict(batch=1, dim=8, length=300, state=16, layout=1), "ChunkedScanKernel"),
])
def test_each_path_is_reached(cuda_library, case, kernel, tmp_path):
    """The CUDA trace names the kernel that ran, so the cases above test the path they mean to."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        check_parity(cuda_library, "float32", True, **case)
    prof.export_chrome_trace(str(tmp_path / "trace.json"))
    events = json.loads((tmp_path / "trace.json").read_text()).get("traceEvents", [])
    names = {e["name"] for e in events if e.get("cat") == "kernel" and "ScanKernel" in e.get("name", "")}
    assert names and all(kernel in name for name in names), names
