"""The Triton selective scan against the float64 reference.

On a machine without a GPU the kernel runs in Triton's interpreter (see
conftest.py), which is slow, so the shapes here are small; the GPU tests at the
end run real Mamba sizes. Tolerances are explained in kernel_cases.py.
"""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_cases import (
    DEVICE,
    OPTIONAL_INPUTS,
    STATE_TOLERANCE,
    make_scan_inputs,
    needs_cuda,
    reference64,
    relative_error,
    tolerance,
)

from mamba_export.errors import InputShapeError
from mamba_export.kernels.triton_scan import selective_scan


def assert_matches_reference(inputs, softplus, block_d=None):
    y, last_state = selective_scan(**inputs, delta_softplus=softplus, block_d=block_d)
    y_ref, state_ref = reference64(inputs, softplus)
    assert y.dtype == inputs["u"].dtype and y.shape == y_ref.shape
    assert last_state.dtype == torch.float32 and last_state.shape == state_ref.shape
    assert relative_error(y, y_ref) <= tolerance(y.dtype, y.device)
    assert relative_error(last_state, state_ref) <= STATE_TOLERANCE


@pytest.mark.parametrize("softplus", [True, False])
@pytest.mark.parametrize(
    "batch, dim, length, n_state, groups_b, groups_c",
    [
        (1, 4, 1, 4, None, None),  # a single step
        (2, 8, 64, 16, None, None),  # a longer sequence, Mamba's N
        (2, 12, 9, 5, 3, None),  # N not a power of two; grouped B beside rank-3 C
        (3, 6, 5, 3, None, 6),  # one channel per group of C
    ],
)
def test_matches_reference(batch, dim, length, n_state, groups_b, groups_c, softplus):
    inputs = make_scan_inputs(batch, dim, length, n_state, groups_b, groups_c, softplus=softplus)
    assert_matches_reference(inputs, softplus)


def test_long_sequence_stays_accurate():
    # The interpreter's cost is per step (about 4 ms here), so 512 steps at a tiny width;
    # the full 2048-step context is in test_real_sizes_on_gpu.
    inputs = make_scan_inputs(1, 2, 512, 3, seed=7)
    assert_matches_reference(inputs, softplus=True)


@pytest.mark.parametrize("absent", [(name,) for name in OPTIONAL_INPUTS] + [OPTIONAL_INPUTS])
def test_optional_inputs_may_be_absent(absent):
    inputs = make_scan_inputs(2, 4, 7, 4, groups_b=2, groups_c=2, absent=absent, seed=1)
    assert_matches_reference(inputs, softplus=True)


def test_zero_initial_state_equals_no_initial_state():
    inputs = make_scan_inputs(1, 4, 6, 4, seed=2)
    inputs["initial_state"] = torch.zeros_like(inputs["initial_state"])
    y_zero, state_zero = selective_scan(**inputs, delta_softplus=True)
    y_none, state_none = selective_scan(**{**inputs, "initial_state": None}, delta_softplus=True)
    torch.testing.assert_close(y_zero, y_none, rtol=0, atol=0)
    torch.testing.assert_close(state_zero, state_none, rtol=0, atol=0)
    assert state_none.abs().max() > 0


@pytest.mark.parametrize("with_initial_state", [True, False])
def test_empty_sequence_returns_the_initial_state(with_initial_state):
    absent = () if with_initial_state else ("initial_state",)
    inputs = make_scan_inputs(2, 4, 0, 3, groups_b=2, absent=absent, dtype=torch.float16)
    y, last_state = selective_scan(**inputs, delta_softplus=True)
    assert y.shape == (2, 4, 0) and y.dtype == torch.float16
    expected = inputs["initial_state"] if with_initial_state else torch.zeros(2, 4, 3, device=DEVICE)
    torch.testing.assert_close(last_state, expected, rtol=0, atol=0)
    if with_initial_state:
        assert last_state.data_ptr() != inputs["initial_state"].data_ptr()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_io_accumulates_in_float32(dtype):
    inputs = make_scan_inputs(2, 8, 32, 8, groups_b=2, groups_c=4, dtype=dtype, seed=3)
    assert_matches_reference(inputs, softplus=True)


@pytest.mark.parametrize(
    "dim, groups, block_d",
    [
        (12, 3, 4),  # four channels per group: each block reads one group
        (12, 6, 4),  # two channels per group: a block spans two groups
        (10, None, 4),  # D not a multiple of the block: the last block is masked
        (8, 8, 1),  # one channel per program
    ],
)
def test_result_does_not_depend_on_the_channel_block(dim, groups, block_d):
    inputs = make_scan_inputs(2, dim, 5, 4, groups_b=groups, groups_c=groups, seed=4)
    assert_matches_reference(inputs, softplus=True, block_d=block_d)


def test_strided_inputs_are_read_through_their_strides():
    inputs = make_scan_inputs(2, 6, 5, 4, groups_b=3, seed=5)
    inputs["u"] = inputs["u"].transpose(1, 2).contiguous().transpose(1, 2)
    inputs["B"] = inputs["B"].permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
    inputs["A"] = inputs["A"].t().contiguous().t()
    inputs["initial_state"] = inputs["initial_state"].transpose(1, 2).contiguous().transpose(1, 2)
    inputs["z"] = torch.randn(2, 6, 10, device=DEVICE)[:, :, ::2]
    assert not inputs["u"].is_contiguous() and not inputs["z"].is_contiguous()
    assert_matches_reference(inputs, softplus=True)


def test_softplus_follows_torch_around_its_threshold():
    inputs = make_scan_inputs(1, 6, 4, 2, softplus=True, absent=("delta_bias",), seed=6)
    # Large positive values take the identity branch, very negative ones exp(x).
    inputs["delta"] = torch.tensor([[[19.9, 20.0, 20.1, 30.0], [-30.0, -17.0, -1e-3, 1e-3]] * 3],
                                   device=DEVICE)
    inputs["A"] = inputs["A"] * 0.01  # keep exp(dt * A) away from underflow
    assert_matches_reference(inputs, softplus=True)


def test_rejects_inputs_that_break_the_contract():
    inputs = make_scan_inputs(1, 4, 3, 2)
    with pytest.raises(InputShapeError, match="delta"):
        selective_scan(**{**inputs, "delta": inputs["delta"][:, :, :2]})
    with pytest.raises(InputShapeError, match="u is float64"):
        selective_scan(**{**inputs, "u": inputs["u"].double()})
    with pytest.raises(InputShapeError, match="A is float16"):
        selective_scan(**{**inputs, "A": inputs["A"].half()})
    with pytest.raises(ValueError, match="block_d"):
        selective_scan(**inputs, block_d=3)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.integers(1, 2),
    groups_per_dim=st.sampled_from([(1, None), (2, 2), (4, 2), (3, 3), (6, 1)]),
    length=st.integers(0, 9),
    n_state=st.integers(1, 9),
    softplus=st.booleans(),
    absent=st.lists(st.sampled_from(OPTIONAL_INPUTS), unique=True),
    grouped_c=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fuzzed_shapes_match_reference(batch, groups_per_dim, length, n_state, softplus, absent,
                                       grouped_c, seed):
    dim, groups = groups_per_dim
    inputs = make_scan_inputs(batch, dim, length, n_state, groups, groups if grouped_c else None,
                              softplus=softplus, absent=tuple(absent), seed=seed)
    assert_matches_reference(inputs, softplus)


@pytest.mark.parametrize("batch, length", [(1, 2048), (8, 2048), (4, 1), (3, 517)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("groups", [None, 4])
@pytest.mark.gpu
@needs_cuda
def test_real_sizes_on_gpu(batch, length, dtype, groups):
    inputs = make_scan_inputs(batch, 1536, length, 16, groups, groups, dtype=dtype, device="cuda")
    assert_matches_reference(inputs, softplus=True)
