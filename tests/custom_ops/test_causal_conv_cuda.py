"""Parity of the CUDA kernel of CausalConv1d, run through ONNX Runtime's CUDA provider.

Inputs and outputs stay on the GPU (IO binding to torch CUDA tensors); outputs are
filled with NaN before each run so an element the kernel forgets to write fails the
check, and inputs carry inf and NaN at masked positions, which must never leak.
Tolerances and the error measure: conv_cases.py (float32 1e-6, float16 1e-3,
bfloat16 1e-2 of the float32 sum's magnitude; new_conv_state bit-exact). The kernel
computes in float32 with expf, as the contract asks.

Shapes reach every kernel variant: K = 1..4 (register window) and wider K (reads
from memory); channel counts that let a thread move several channels as one word
(a multiple of 4 in half precision, 2 in float32: 16-step chunks) and counts that do
not (one channel a thread: 32-step chunks); lengths on both sides of each chunk (state
carried across chunks from x), channel counts on both sides of the 128-thread block.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import test_selective_scan_cuda as scan_cuda
from conv_cases import ALL_OPTIONAL, TOLERANCE, check_parity, fuzzed_cases, make_inputs, reference, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.one_conv_node import causal_conv_model

pytestmark = pytest.mark.gpu

# One way to find the CUDA library, open a CUDA-only session and move arrays to the GPU:
# the SelectiveScan CUDA tests' own.
cuda_library = scan_cuda.cuda_library
CUDA_PROVIDER, cuda_session, to_cuda = scan_cuda.CUDA_PROVIDER, scan_cuda.cuda_session, scan_cuda.to_cuda

DTYPES = tuple(TOLERANCE)

CASES = {
    "decode_130m": dict(batch=64, length=1, channels=1536, width=4),
    "prefill_130m": dict(batch=1, length=2048, channels=1536, width=4),
    "chunk_31": dict(length=31, channels=130),
    "chunk_32": dict(length=32, channels=128),
    "chunk_33": dict(length=33, channels=129),
    "scalar_chunk_32": dict(length=32, channels=129),
    "scalar_below_chunk_15": dict(length=15, channels=128),  # the word path starts at a whole chunk
    "word_chunk_16": dict(length=16, channels=516),
    "word_chunk_17": dict(length=17, channels=1028),
    "word_width_5_generic": dict(length=40, channels=128, width=5),
    "chunks_100_width_2": dict(length=100, width=2),
    "width_1": dict(width=1, length=40),
    "width_3": dict(width=3, length=70),
    "width_5_generic": dict(width=5, length=70),
    "width_9_generic_long": dict(width=9, length=300, channels=33),
    "length_0": dict(length=0),
    "length_0_generic": dict(length=0, width=6),
    "every_position_dropped": dict(length=40, drop=1.0),
    "no_optional": dict(length=40, present=()),
    "only_mask": dict(length=40, present=("mask",)),
    "only_state": dict(length=40, present=("conv_state",)),
    "empty_batch": dict(batch=0, length=40),
    "no_channels": dict(channels=0, length=40),
}


def device_binding(session, tensors: dict):
    """An IO binding of device tensors, with outputs filled with NaN -> (binding, y, new_conv_state)."""
    import torch
    from onnx import TensorProto

    onnx_type = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: TensorProto.BFLOAT16,
                 torch.int64: np.int64}
    x = tensors["x"]
    y = torch.full_like(x, float("nan"))
    state = torch.full((x.shape[0], x.shape[2], tensors["weight"].shape[1] - 1), float("nan"),
                       dtype=x.dtype, device=x.device)
    binding = session.io_binding()
    for name, tensor in tensors.items():
        binding.bind_input(name, "cuda", tensor.device.index or 0, onnx_type[tensor.dtype],
                           list(tensor.shape), tensor.data_ptr())
    for name, tensor in (("y", y), ("new_conv_state", state)):
        binding.bind_output(name, "cuda", tensor.device.index or 0, onnx_type[tensor.dtype],
                            list(tensor.shape), tensor.data_ptr())
    return binding, y, state


def run_bound(session, binding):
    import torch

    torch.cuda.synchronize()
    session.run_with_iobinding(binding)
    torch.cuda.synchronize()


def run_on_device(session, tensors: dict):
    """Bind device tensors, run, and return (y, new_conv_state) as torch CUDA tensors."""
    binding, y, state = device_binding(session, tensors)
    run_bound(session, binding)
    return y, state


def on_cuda(library, io_dtype, present):
    """compute(inputs, activation) for conv_cases.check_parity, through a CUDA-only session."""
    def compute(inputs, activation):
        session = cuda_session(causal_conv_model(io_dtype, present=present, activation=activation), library)
        tensors = {name: to_cuda(value) for name, value in inputs.items()}
        if any(t.numel() == 0 for t in tensors.values()) or inputs["weight"].shape[1] == 1:
            return run(session, inputs)  # empty tensors have no device address to bind
        return tuple(t.float().cpu().numpy() for t in run_on_device(session, tensors))
    return compute


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("activation", [0, 1], ids=["none", "silu"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(cuda_library, case, activation, io_dtype):
    args = CASES[case]
    check_parity(on_cuda(cuda_library, io_dtype, args.get("present", ALL_OPTIONAL)), io_dtype, activation, **args)


def test_chained_calls_equal_one_call(cuda_library):
    """Prefill in two pieces with the state carried equals one call, bit for bit."""
    session = cuda_session(causal_conv_model("float16", activation=1), cuda_library)
    inputs = make_inputs(batch=3, length=70, channels=200, io_dtype="float16")
    whole_y, whole_state = run(session, inputs)
    for split in (1, 32, 33, 69):
        first = {k: (v[:, :split] if k in ("x", "mask") else v) for k, v in inputs.items()}
        y1, middle = run(session, first)
        second = {k: (v[:, split:] if k in ("x", "mask") else v) for k, v in inputs.items()} | {"conv_state": middle}
        y2, state = run(session, second)
        np.testing.assert_array_equal(np.concatenate([y1, y2], axis=1), whole_y, err_msg=f"split {split}")
        np.testing.assert_array_equal(state, whole_state, err_msg=f"split {split}")


@pytest.mark.parametrize("length", [0, 1, 300])
def test_repeated_runs_give_identical_bits(cuda_library, length):
    """No races: each output element has one writer and a fixed order of sums."""
    inputs = make_inputs(batch=2, length=length, channels=300)
    session = cuda_session(causal_conv_model(activation=1), cuda_library)
    first, second = session.run(None, inputs), session.run(None, inputs)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_node_runs_on_the_cuda_provider(cuda_library, tmp_path):
    """The profile names the provider that ran each node; ours must say CUDA."""
    session = cuda_session(causal_conv_model(), cuda_library, str(tmp_path / "profile"))
    session.run(None, make_inputs(length=40))
    events = json.loads(Path(session.end_profiling()).read_text())
    providers = {event["args"].get("provider") for event in events
                 if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time")
                 and event.get("args", {}).get("op_name") == "CausalConv1d"}
    assert providers == {CUDA_PROVIDER}


def test_replays_inside_a_cuda_graph(cuda_library):
    """The kernel runs on ORT's stream and neither allocates nor synchronises, so ORT can capture
    it in a CUDA graph; replays on new input values, written into the bound buffers, give their result."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.register_custom_ops_library(cuda_library)
    session = ort.InferenceSession(causal_conv_model("float16", activation=1).SerializeToString(), options,
                                   providers=[(CUDA_PROVIDER, {"enable_cuda_graph": "1"})])
    case = dict(batch=4, length=1, channels=1536)
    tensors = {name: to_cuda(value) for name, value in make_inputs(**case, io_dtype="float16", seed=1).items()}
    binding, y, state = device_binding(session, tensors)
    for _ in range(3):  # ORT runs the graph normally a few times, then captures it
        run_bound(session, binding)
    for seed in (2, 3):
        for name, value in make_inputs(**case, io_dtype="float16", seed=seed).items():
            tensors[name].copy_(to_cuda(value))
        y.fill_(float("nan"))
        state.fill_(float("nan"))

        def replay(inputs, activation):
            run_bound(session, binding)
            return y.float().cpu().numpy(), state.float().cpu().numpy()

        check_parity(replay, "float16", 1, **case, seed=seed)


def test_bad_input_is_an_ort_error_and_the_session_survives(cuda_library):
    """A shape the contract forbids is refused before any launch; the GPU stays usable."""
    session = cuda_session(causal_conv_model(shaped=False), cuda_library)
    inputs = make_inputs(length=8)
    with pytest.raises(Exception, match=r"CausalConv1d: mask is \(2, 7\), expected \(2, 8\)"):
        session.run(None, dict(inputs, mask=inputs["mask"][:, :7]))
    y, state = session.run(None, inputs)
    ref_y, ref_state = reference(inputs, 0)
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(state, ref_state)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=fuzzed_cases(lengths=st.sampled_from([0, 1, 2, 7, 31, 32, 33, 64, 65, 130]),
                         channels=st.sampled_from([1, 3, 127, 128, 129, 300])),
       activation=st.sampled_from([0, 1]), io_dtype=st.sampled_from(DTYPES))
def test_fuzzed_shapes_masks_and_optional_inputs(cuda_library, case, activation, io_dtype):
    check_parity(on_cuda(cuda_library, io_dtype, case["present"]), io_dtype, activation, **case)
