"""torch.ops.mamba_export.causal_conv1d: eager results in every dtype, fake shapes, and tracing with dynamic B and L.

Tolerances: tests/custom_ops/conv_cases.py (float32 1e-6, float16 1e-3, bfloat16 1e-2 of the sum's
magnitude; new_conv_state exact).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mamba_export.errors import InputShapeError
from mamba_export.ops.torch_op import causal_conv1d  # noqa: F401  (registers the op)
from tests.custom_ops.conv_cases import TOLERANCE, check_parity, fuzzed_cases, make_inputs

OP = torch.ops.mamba_export.causal_conv1d
TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
ARGS = ("x", "weight", "bias", "conv_state", "mask")


def as_torch(inputs: dict, io_dtype: str = "float32") -> tuple:
    """The op's positional tensors (None for absent ones); x and conv_state in io_dtype."""
    def convert(name):
        if name not in inputs:
            return None
        value = inputs[name]
        if name == "mask":
            return torch.from_numpy(value)
        tensor = torch.from_numpy(np.asarray(value, dtype=np.float32))
        return tensor.to(TORCH_DTYPES[io_dtype]) if name in ("x", "conv_state") else tensor
    return tuple(convert(name) for name in ARGS)


def eager(io_dtype):
    def compute(inputs, activation):
        y, state = OP(*as_torch(inputs, io_dtype), activation)
        assert y.dtype == state.dtype == TORCH_DTYPES[io_dtype]
        return y.float().numpy(), state.float().numpy()
    return compute


@settings(max_examples=60, deadline=None)
@given(case=fuzzed_cases(), activation=st.sampled_from([0, 1]), io_dtype=st.sampled_from(sorted(TOLERANCE)))
def test_fuzzed_eager_matches_the_float64_reference(case, activation, io_dtype):
    check_parity(eager(io_dtype), io_dtype, activation, **case)


def test_length_0_returns_a_copy_of_the_state():
    args = as_torch(make_inputs(length=0))
    _, state = OP(*args, 0)
    assert torch.equal(state, args[3]) and state.data_ptr() != args[3].data_ptr()


def test_opcheck_schema_fake_and_eager_agree():
    torch.library.opcheck(OP, as_torch(make_inputs(poison=False)) + (1,),
                          test_utils=("test_schema", "test_faketensor"))


def test_fake_impl_gives_shapes_and_dtypes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    real = as_torch(make_inputs(batch=3, length=11, channels=8, width=4), "float16")
    with FakeTensorMode() as mode:
        y, state = OP(*(None if t is None else mode.from_tensor(t) for t in real), 1)
    assert tuple(y.shape) == (3, 11, 8) and y.dtype == torch.float16
    assert tuple(state.shape) == (3, 8, 3) and state.dtype == torch.float16


def test_fake_impl_checks_the_contract():
    from torch._subclasses.fake_tensor import FakeTensorMode

    args = list(as_torch(make_inputs()))
    args[4] = args[4][:, :-1]
    with FakeTensorMode() as mode, pytest.raises(InputShapeError, match=r"mask is \(2, 8\), expected \(2, 9\)"):
        OP(*(None if t is None else mode.from_tensor(t) for t in args), 0)


class _Conv(torch.nn.Module):
    def forward(self, x, weight, bias, conv_state, mask):
        return OP(x, weight, bias, conv_state, mask, 1)


def test_export_keeps_one_op_call_with_dynamic_batch_and_length():
    rows, length = torch.export.Dim("batch", min=1), torch.export.Dim("length", min=1)
    shapes = ({0: rows, 1: length}, None, None, {0: rows}, {0: rows, 1: length})
    program = torch.export.export(_Conv(), as_torch(make_inputs(length=5)), dynamic_shapes=shapes)
    assert sum(n.target is OP.default for n in program.graph.nodes) == 1
    for batch, other_length in ((1, 1), (3, 12)):
        other = as_torch(make_inputs(batch=batch, length=other_length, seed=other_length, poison=False))
        got, expected = program.module()(*other), OP(*other, 1)
        torch.testing.assert_close(got[0], expected[0])
        torch.testing.assert_close(got[1], expected[1])


@pytest.mark.gpu
def test_cuda_eager_matches_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU: the op's eager path on CUDA needs one")
    args = as_torch(make_inputs(length=33), "float16")
    y_cpu, state_cpu = OP(*args, 1)
    y, state = OP(*(None if t is None else t.cuda() for t in args), 1)
    torch.testing.assert_close(y.cpu(), y_cpu, rtol=1e-3, atol=1e-3)
    assert torch.equal(state.cpu(), state_cpu)
