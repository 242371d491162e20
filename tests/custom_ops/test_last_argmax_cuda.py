"""The CUDA kernel of LastArgMax, run through ONNX Runtime's CUDA provider, against the reference.

The input and output stay on the GPU (IO binding to torch CUDA tensors); the output is filled
with -1 before each run so a sequence the kernel forgets to write fails the check. The check is
exact (argmax_cases.py): the block reduction's combine rule is a total order on (value, index),
so ties, NaNs and infinities give NumPy's index whatever order the threads combine in.

Shapes reach every part of the kernel: V below, at and above one warp and the 1024-thread block,
past the unrolled steps (a tail of single loads) and not a multiple of anything, one position and
several (decoys in the earlier ones), batches beyond one block per SM; rows that start on 16 bytes
(read in 16-byte pieces, the entries past the last whole piece one at a time) and rows that do
not (read one entry at a time), in one call.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import test_selective_scan_cuda as scan_cuda
from argmax_cases import DTYPES, ROWS, check_parity, make_logits, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scan_cases import NUMPY_DTYPES

from mamba_export.ops.linear import ELEMENT_BYTES
from mamba_export.ops.reference import last_argmax as reference_argmax
from tests.support.one_argmax_node import last_argmax_model

pytestmark = pytest.mark.gpu

cuda_library = scan_cuda.cuda_library
CUDA_PROVIDER, cuda_session, to_cuda = scan_cuda.CUDA_PROVIDER, scan_cuda.cuda_session, scan_cuda.to_cuda

SHAPES = {
    "decode_b1": dict(batch=1, positions=1, vocab=50280),
    "decode_b32": dict(batch=32, positions=1, vocab=50280),
    "decode_b200": dict(batch=200, positions=1, vocab=50277),
    "prefill": dict(batch=2, positions=9, vocab=50280),
    "vocab_1": dict(batch=3, positions=2, vocab=1),
    "vocab_31": dict(batch=2, positions=1, vocab=31),
    "vocab_33": dict(batch=2, positions=2, vocab=33),
    "vocab_1023": dict(batch=2, positions=1, vocab=1023),
    "vocab_1025": dict(batch=2, positions=3, vocab=1025),
    "vocab_4096": dict(batch=2, positions=1, vocab=4096),  # exactly the unrolled steps, no tail
    "vocab_4097": dict(batch=2, positions=2, vocab=4097),
    "vocab_7001": dict(batch=3, positions=1, vocab=7001),
}


def device_binding(session, logits):
    """An IO binding of a device tensor, with the output filled with -1 -> (binding, tokens)."""
    import torch
    from onnx import TensorProto

    onnx_type = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: TensorProto.BFLOAT16}
    tokens = torch.full((logits.shape[0], 1), -1, dtype=torch.int64, device=logits.device)
    binding = session.io_binding()
    binding.bind_input("logits", "cuda", logits.device.index or 0, onnx_type[logits.dtype], list(logits.shape),
                       logits.data_ptr())
    binding.bind_output("tokens", "cuda", tokens.device.index or 0, np.int64, list(tokens.shape), tokens.data_ptr())
    return binding, tokens


def run_bound(session, binding):
    import torch

    torch.cuda.synchronize()
    session.run_with_iobinding(binding)
    torch.cuda.synchronize()


def on_cuda(library, io_dtype):
    """compute(logits) for argmax_cases.check_parity, through a CUDA-only session."""
    session = cuda_session(last_argmax_model(io_dtype), library)

    def compute(logits):
        if logits.size == 0:
            return run(session, logits)  # an empty tensor has no device address to bind
        on_device = to_cuda(logits)  # kept until the run ends: the binding holds only its address
        binding, tokens = device_binding(session, on_device)
        run_bound(session, binding)
        return tokens.cpu().numpy()
    return compute


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("rows", sorted(ROWS))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_matches_reference(cuda_library, shape, rows, io_dtype):
    check_parity(on_cuda(cuda_library, io_dtype), rows=rows, io_dtype=io_dtype, **SHAPES[shape])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(io_dtype=st.sampled_from(DTYPES), rows=st.sampled_from(sorted(ROWS)), batch=st.integers(1, 40),
       positions=st.integers(1, 4), vocab=st.sampled_from([1, 2, 31, 32, 33, 1000, 1024, 4095, 4096, 4097, 50280]),
       seed=st.integers(0, 2**31 - 1))
def test_fuzzed_shapes(cuda_library, io_dtype, rows, batch, positions, vocab, seed):
    check_parity(on_cuda(cuda_library, io_dtype), rows=rows, io_dtype=io_dtype, batch=batch, positions=positions,
                 vocab=vocab, seed=seed)


@pytest.mark.parametrize("io_dtype", DTYPES)
def test_no_sequences_give_an_empty_output(cuda_library, io_dtype):
    session = cuda_session(last_argmax_model(io_dtype), cuda_library)
    tokens = run(session, make_logits(batch=0, positions=2, vocab=9, io_dtype=io_dtype))
    assert tokens.shape == (0, 1) and tokens.dtype == np.int64


def test_a_tie_across_warps_takes_the_first_index(cuda_library):
    """The maximum held many times, by one thread (stride 1024) or spread over every warp (97, 32):
    whatever order the reduction combines them in, the lowest index wins."""
    logits = np.zeros((3, 1, 50280), np.float16)
    for b, stride in enumerate((1024, 97, 32)):
        logits[b, 0, 500::stride] = 7.0
    tokens = on_cuda(cuda_library, "float16")(logits)
    np.testing.assert_array_equal(tokens, [[500], [500], [500]])


@pytest.mark.parametrize("io_dtype", DTYPES)
@pytest.mark.parametrize("vocab", [50277, 8 * 1024 * 4 + 7, 13])
def test_pieces_and_single_entries_meet_at_the_right_index(cuda_library, io_dtype, vocab):
    """Rows of a vocabulary that is no multiple of a 16-byte piece: row 0 starts on 16 bytes (pieces,
    then single entries), the later ones mostly do not. Each row's maximum sits at a boundary (the
    last entry of the last whole piece, the first single entry after it, the row's last entry) and
    a tie with a later entry must keep the earlier index."""
    count = 16 // ELEMENT_BYTES[io_dtype]
    whole = (vocab // count) * count
    positions = sorted({whole - 1, min(whole, vocab - 1), vocab - 1, 0})
    rows = positions * 2
    logits = np.random.default_rng(vocab).uniform(-1, 1, (len(rows), 1, vocab))
    for row, where in enumerate(rows):
        logits[row, 0, where] = 9.0
        logits[row, 0, vocab - 1] = 9.0  # a tie with the row's last entry: the earlier index wins
    values = logits.astype(NUMPY_DTYPES[io_dtype])
    expected = reference_argmax(values)
    np.testing.assert_array_equal(expected.reshape(-1), rows)
    np.testing.assert_array_equal(on_cuda(cuda_library, io_dtype)(values), expected)


def test_cpu_and_cuda_agree(cuda_library, make_session):
    model = last_argmax_model("bfloat16")
    logits = make_logits(batch=16, positions=2, vocab=50280, rows="ties", io_dtype="bfloat16", seed=4)
    np.testing.assert_array_equal(run(cuda_session(model, cuda_library), logits), run(make_session(model), logits))


def test_node_runs_on_the_cuda_provider(cuda_library, tmp_path):
    """The profile names the provider that ran each node; ours must say CUDA."""
    session = cuda_session(last_argmax_model(), cuda_library, str(tmp_path / "profile"))
    run(session, make_logits())
    events = json.loads(Path(session.end_profiling()).read_text())
    providers = {event["args"].get("provider") for event in events
                 if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time")
                 and event.get("args", {}).get("op_name") == "LastArgMax"}
    assert providers == {CUDA_PROVIDER}


def test_replays_inside_a_cuda_graph(cuda_library):
    """The kernel runs on ORT's stream and neither allocates nor synchronises, so ORT can capture
    it in a CUDA graph; replays on new logits give their tokens."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.register_custom_ops_library(cuda_library)
    session = ort.InferenceSession(last_argmax_model("float16").SerializeToString(), options,
                                   providers=[(CUDA_PROVIDER, {"enable_cuda_graph": "1"})])
    case = dict(batch=8, positions=1, vocab=50280, io_dtype="float16")
    logits = to_cuda(make_logits(**case, seed=1))
    binding, tokens = device_binding(session, logits)
    for _ in range(3):  # ORT runs the graph normally a few times, then captures it
        run_bound(session, binding)
    for seed, rows in ((2, "random"), (3, "nan_middle"), (4, "ties")):
        values = make_logits(**case, rows=rows, seed=seed)
        logits.copy_(to_cuda(values))
        tokens.fill_(-1)
        run_bound(session, binding)
        np.testing.assert_array_equal(tokens.cpu().numpy(), reference_argmax(values), err_msg=f"replay {seed}")


def test_bad_input_is_an_ort_error_and_the_session_survives(cuda_library):
    """A shape the contract forbids is refused before any launch; the GPU stays usable."""
    session = cuda_session(last_argmax_model(shaped=False), cuda_library)
    with pytest.raises(Exception, match=r"LastArgMax: logits is \(2, 0, 9\), expected L >= 1 positions"):
        session.run(None, {"logits": np.zeros((2, 0, 9), np.float32)})
    with pytest.raises(Exception, match=r"LastArgMax: logits has rank 2 \(3, 9\), expected rank 3 \(B, L, V\)"):
        session.run(None, {"logits": np.zeros((3, 9), np.float32)})
    check_parity(lambda logits: run(session, logits), batch=3, positions=2, vocab=3000)
