"""torch.ops.mamba_export.selective_scan: eager results, fake shapes, and tracing with a dynamic L."""

from __future__ import annotations

import pytest
import torch

from mamba_export.errors import InputShapeError
from mamba_export.ops import reference
from mamba_export.ops.torch_op import selective_scan  # noqa: F401  (registers the op)

OP = torch.ops.mamba_export.selective_scan


def make_inputs(batch=2, dim=6, state=4, length=7, groups=0, dtype=torch.float32, optional=True, seed=0):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g)).to(dtype)

    bc_shape = (batch, groups, state, length) if groups else (batch, state, length)
    inputs = dict(
        u=randn(batch, dim, length), delta=randn(batch, dim, length, scale=0.5),
        A=-torch.exp(torch.randn(dim, state, generator=g)), B=randn(*bc_shape), C=randn(*bc_shape),
        D=None, z=None, delta_bias=None, initial_state=None)
    if optional:
        inputs.update(D=torch.randn(dim, generator=g), z=randn(batch, dim, length),
                      delta_bias=torch.randn(dim, generator=g),
                      initial_state=torch.randn(batch, dim, state, generator=g))
    return inputs


def relative_error(actual, expected):
    expected = expected.double()
    return ((actual.double() - expected).abs().max() / expected.abs().max()).item()


@pytest.mark.parametrize("groups", [0, 3])
@pytest.mark.parametrize("optional", [False, True])
def test_eager_cpu_matches_float64_reference(groups, optional):
    inputs = make_inputs(groups=groups, optional=optional)
    y, last_state = OP(**inputs, delta_softplus=True)
    as64 = {k: (None if v is None else v.double()) for k, v in inputs.items()}
    y64, state64 = reference.selective_scan(**as64, delta_softplus=True)
    # float32 arithmetic over 7 steps: a few ulps of float32 (1.2e-7 each).
    assert relative_error(y, y64) < 1e-5
    assert relative_error(last_state, state64) < 1e-5
    assert last_state.dtype == torch.float32


def test_channels_last_is_the_same_scan_transposed():
    inputs = make_inputs(groups=3)
    y, last_state = OP(**inputs, delta_softplus=True)
    moved = {k: (v if v is None or k not in ("u", "delta", "z", "B", "C")
                 else v.permute((0, 2, 1) if v.dim() == 3 else (0, 3, 1, 2)).contiguous())
             for k, v in inputs.items()}
    y_last, state_last = OP(**moved, delta_softplus=True, layout=1)
    # The same float32 arithmetic on differently strided tensors: equal up to a few ulps.
    assert relative_error(y_last, y.transpose(1, 2)) < 1e-6
    assert relative_error(state_last, last_state) < 1e-6
    fake_mode = torch._subclasses.fake_tensor.FakeTensorMode()
    with fake_mode:
        fake = {k: (None if v is None else fake_mode.from_tensor(v)) for k, v in moved.items()}
        y_fake, state_fake = OP(**fake, delta_softplus=True, layout=1)
    assert y_fake.shape == y_last.shape and state_fake.shape == state_last.shape
    with pytest.raises(InputShapeError, match="layout is 2"):
        OP(**moved, delta_softplus=True, layout=2)


def test_half_inputs_give_half_y_and_float32_state():
    inputs = make_inputs(dtype=torch.float16)
    inputs.update(A=inputs["A"].float())
    y, last_state = OP(**inputs, delta_softplus=True)
    assert y.dtype == torch.float16
    assert last_state.dtype == torch.float32


def test_empty_sequence_returns_a_copy_of_the_initial_state():
    inputs = make_inputs(length=0)
    y, last_state = OP(**inputs, delta_softplus=False)
    assert y.shape == (2, 6, 0)
    torch.testing.assert_close(last_state, inputs["initial_state"])
    assert last_state.data_ptr() != inputs["initial_state"].data_ptr()


def test_opcheck_schema_fake_and_eager_agree():
    inputs = make_inputs(groups=2)
    torch.library.opcheck(OP, tuple(inputs.values()) + (True,),
                          test_utils=("test_schema", "test_faketensor"))


def test_fake_impl_gives_shapes_and_dtypes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        inputs = {k: (None if v is None else mode.from_tensor(v))
                  for k, v in make_inputs(batch=3, dim=8, state=5, length=11).items()}
        y, last_state = OP(**inputs, delta_softplus=True)
    assert tuple(y.shape) == (3, 8, 11) and y.dtype == torch.float32
    assert tuple(last_state.shape) == (3, 8, 5) and last_state.dtype == torch.float32


def test_fake_impl_checks_the_contract():
    from torch._subclasses.fake_tensor import FakeTensorMode

    inputs = make_inputs()
    inputs["delta"] = inputs["delta"][:, :, :-1]
    with FakeTensorMode() as mode, pytest.raises(InputShapeError, match="delta"):
        OP(**{k: (None if v is None else mode.from_tensor(v)) for k, v in inputs.items()},
           delta_softplus=True)


class _ScanModule(torch.nn.Module):
    def forward(self, u, delta, A, B, C, D, z, delta_bias, initial_state):
        return OP(u, delta, A, B, C, D, z, delta_bias, initial_state, True)


def test_export_keeps_one_op_call_with_a_dynamic_length():
    inputs = make_inputs(length=5)
    length = torch.export.Dim("length", min=1)
    seq = {2: length}
    bc = {2: length}
    shapes = (seq, seq, None, bc, bc, None, seq, None, None)
    program = torch.export.export(_ScanModule(), tuple(inputs.values()), dynamic_shapes=shapes)
    calls = [n for n in program.graph.nodes if n.target is OP.default]
    assert len(calls) == 1
    for other_length in (1, 3, 12):
        other = make_inputs(length=other_length, seed=other_length)
        got = program.module()(*other.values())
        expected = OP(**other, delta_softplus=True)
        torch.testing.assert_close(got[0], expected[0])
        torch.testing.assert_close(got[1], expected[1])


@pytest.mark.gpu
def test_cuda_eager_matches_the_cpu_reference():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU: the CUDA path of the op runs the Triton kernel")
    inputs = make_inputs(groups=2, length=33)
    y_cpu, state_cpu = OP(**inputs, delta_softplus=True)
    cuda = {k: (None if v is None else v.cuda()) for k, v in inputs.items()}
    y, state = OP(**cuda, delta_softplus=True)
    # Triton's scan order differs from the sequential loop: float32 rounding, 33 steps.
    assert relative_error(y.cpu(), y_cpu) < 1e-5
    assert relative_error(state.cpu(), state_cpu) < 1e-5
