"""Parity of the CUDA kernel of ResidualRMSNorm, run through ONNX Runtime's CUDA provider.

Inputs and outputs stay on the GPU (IO binding to torch CUDA tensors); outputs are
filled with NaN before each run so an element the kernel forgets to write fails the
check. Tolerances and the error measure: norm_cases.py (y float32 1e-5, float16 1e-3,
bfloat16 1e-2 of the largest |y|; residual_out bit-exact: one float32 addition).

Shapes reach every part of the kernel: H below, at and above the 256-thread block
(threads with no value, several values per thread), rows beyond one wave of blocks,
x of rank 1 to 4, with and without the residual.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import test_selective_scan_cuda as scan_cuda
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from norm_cases import TOLERANCE, check_parity, make_inputs, run

from tests.support.one_norm_node import residual_norm_model

pytestmark = pytest.mark.gpu

cuda_library = scan_cuda.cuda_library
CUDA_PROVIDER, cuda_session, to_cuda = scan_cuda.CUDA_PROVIDER, scan_cuda.cuda_session, scan_cuda.to_cuda

DTYPES = tuple(TOLERANCE)

CASES = {
    "decode_130m": dict(shape=(64, 1, 768)),
    "prefill_130m": dict(shape=(1, 2048, 768)),
    "decode_2.8b": dict(shape=(32, 1, 2560)),
    "decode_1.4b_b1": dict(shape=(1, 1, 2048)),  # the held kernels: 4, 8 and 16 values a thread
    "held_4096": dict(shape=(2, 4096)),
    "held_1025": dict(shape=(2, 1025)),
    "loop_4097": dict(shape=(2, 4097)),  # past the held kernels: the loop over the row
    "loop_5120": dict(shape=(3, 1, 5120)),
    "hidden_1": dict(shape=(7, 1)),
    "hidden_255": dict(shape=(3, 255)),
    "hidden_256": dict(shape=(3, 256)),
    "hidden_257": dict(shape=(3, 257)),
    "rank_1": dict(shape=(100,)),
    "rank_4": dict(shape=(2, 3, 4, 50)),
    "many_rows": dict(shape=(70000, 8)),
    "large_values": dict(shape=(4, 512), scale=1e3),
}


def device_binding(session, tensors: dict):
    """An IO binding of device tensors, with outputs filled with NaN -> (binding, y, residual_out)."""
    import torch
    from onnx import TensorProto

    onnx_type = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: TensorProto.BFLOAT16}
    x = tensors["x"]
    y = torch.full_like(x, float("nan"))
    total = torch.full(x.shape, float("nan"), dtype=torch.float32, device=x.device)
    binding = session.io_binding()
    for name, tensor in tensors.items():
        binding.bind_input(name, "cuda", tensor.device.index or 0, onnx_type[tensor.dtype],
                           list(tensor.shape), tensor.data_ptr())
    for name, tensor in (("y", y), ("residual_out", total)):
        binding.bind_output(name, "cuda", tensor.device.index or 0, onnx_type[tensor.dtype],
                            list(tensor.shape), tensor.data_ptr())
    return binding, y, total


def run_bound(session, binding):
    import torch

    torch.cuda.synchronize()
    session.run_with_iobinding(binding)
    torch.cuda.synchronize()


def on_cuda(library, io_dtype, residual, rank):
    """compute(inputs) for norm_cases.check_parity, through a CUDA-only session."""
    session = cuda_session(residual_norm_model(io_dtype, residual=residual, rank=rank), library)

    def compute(inputs):
        tensors = {name: to_cuda(value) for name, value in inputs.items()}
        if any(t.numel() == 0 for t in tensors.values()):
            return run(session, inputs)  # empty tensors have no device address to bind
        binding, y, total = device_binding(session, tensors)
        run_bound(session, binding)
        return y.float().cpu().numpy(), total.cpu().numpy()
    return compute


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("residual", [True, False], ids=["residual", "first_block"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(cuda_library, case, residual, io_dtype):
    spec = CASES[case]
    check_parity(on_cuda(cuda_library, io_dtype, residual, len(spec["shape"])), io_dtype, residual=residual,
                 **spec)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(io_dtype=st.sampled_from(DTYPES), residual=st.booleans(), rows=st.integers(0, 70),
       hidden=st.sampled_from([1, 2, 31, 32, 33, 255, 256, 257, 768, 1000, 2048, 4096, 4097]),
       seed=st.integers(0, 2**31 - 1))
def test_fuzzed_shapes(cuda_library, io_dtype, residual, rows, hidden, seed):
    check_parity(on_cuda(cuda_library, io_dtype, residual, 2), io_dtype, residual=residual, shape=(rows, hidden),
                 seed=seed)


def test_repeated_runs_give_identical_bits(cuda_library):
    """No races: the block reduction sums in a fixed order."""
    inputs = make_inputs(shape=(5, 7, 1000), io_dtype="float16")
    session = cuda_session(residual_norm_model("float16"), cuda_library)
    first, second = run(session, inputs), run(session, inputs)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cpu_and_cuda_agree_on_residual_out(cuda_library, make_session):
    """Both kernels do the contract's one float32 addition: the stream is the same bits on either."""
    inputs = make_inputs(shape=(3, 4, 768), io_dtype="float16", seed=9)
    model = residual_norm_model("float16")
    _, on_gpu = run(cuda_session(model, cuda_library), inputs)
    _, on_cpu = run(make_session(model), inputs)
    np.testing.assert_array_equal(on_gpu, on_cpu)


def test_node_runs_on_the_cuda_provider(cuda_library, tmp_path):
    """The profile names the provider that ran each node; ours must say CUDA."""
    session = cuda_session(residual_norm_model(), cuda_library, str(tmp_path / "profile"))
    run(session, make_inputs())
    events = json.loads(Path(session.end_profiling()).read_text())
    providers = {event["args"].get("provider") for event in events
                 if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time")
                 and event.get("args", {}).get("op_name") == "ResidualRMSNorm"}
    assert providers == {CUDA_PROVIDER}


def test_replays_inside_a_cuda_graph(cuda_library):
    """The kernel runs on ORT's stream and neither allocates nor synchronises, so ORT can capture
    it in a CUDA graph; replays on new input values give their result."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.register_custom_ops_library(cuda_library)
    session = ort.InferenceSession(residual_norm_model("float16").SerializeToString(), options,
                                   providers=[(CUDA_PROVIDER, {"enable_cuda_graph": "1"})])
    case = dict(shape=(4, 1, 768))
    tensors = {name: to_cuda(value) for name, value in make_inputs(**case, io_dtype="float16", seed=1).items()}
    binding, y, total = device_binding(session, tensors)
    for _ in range(3):  # ORT runs the graph normally a few times, then captures it
        run_bound(session, binding)
    for seed in (2, 3):
        for name, value in make_inputs(**case, io_dtype="float16", seed=seed).items():
            tensors[name].copy_(to_cuda(value))
        y.fill_(float("nan"))
        total.fill_(float("nan"))

        def replay(inputs):
            run_bound(session, binding)
            return y.float().cpu().numpy(), total.cpu().numpy()

        check_parity(replay, "float16", **case, seed=seed)


def test_bad_input_is_an_ort_error_and_the_session_survives(cuda_library):
    """A shape the contract forbids is refused before any launch; the GPU stays usable."""
    session = cuda_session(residual_norm_model(shaped=False), cuda_library)
    inputs = make_inputs()
    with pytest.raises(Exception, match=r"ResidualRMSNorm: residual is \(2, 3, 15\), expected \(2, 3, 16\)"):
        session.run(None, dict(inputs, residual=inputs["residual"][..., :15]))
    check_parity(lambda feeds: run(session, feeds), "float32")
