"""The decode-step kernel: L single steps equal one scan over L steps.

Runs in Triton's interpreter without a GPU (see conftest.py); tolerances are
explained in kernel_cases.py.
"""

import pytest
import torch
from kernel_cases import (
    STATE_TOLERANCE,
    make_scan_inputs,
    needs_cuda,
    reference64,
    relative_error,
    tolerance,
)

from mamba_export.errors import InputShapeError
from mamba_export.kernels.triton_scan import selective_scan
from mamba_export.kernels.triton_state_update import selective_state_update


def step_through(inputs, softplus, state=None, start=0):
    """Feed steps start.. of a scan's inputs to the step kernel; return (y (B, D, L'), state)."""
    if state is None and inputs["initial_state"] is not None:
        state = inputs["initial_state"].clone()
    elif state is None:
        batch, dim, n_state = inputs["u"].shape[0], *inputs["A"].shape
        state = torch.zeros(batch, dim, n_state, device=inputs["u"].device)
    ys = []
    for t in range(start, inputs["u"].shape[-1]):
        z = inputs["z"]
        ys.append(selective_state_update(
            state, inputs["u"][..., t], inputs["delta"][..., t], inputs["A"],
            inputs["B"][..., t], inputs["C"][..., t], D=inputs["D"],
            z=z[..., t] if z is not None else None, dt_bias=inputs["delta_bias"], dt_softplus=softplus,
        ))
    return torch.stack(ys, dim=-1), state


@pytest.mark.parametrize(
    "groups_b, groups_c, absent, softplus",
    [
        (None, None, (), True),
        (2, 4, (), True),
        (4, None, ("D", "z"), False),
        (None, 2, ("delta_bias", "initial_state"), True),
    ],
)
def test_steps_equal_the_reference_scan(groups_b, groups_c, absent, softplus):
    inputs = make_scan_inputs(2, 8, 12, 5, groups_b, groups_c, softplus=softplus, absent=absent)
    y, state = step_through(inputs, softplus)
    y_ref, state_ref = reference64(inputs, softplus)
    assert relative_error(y, y_ref) <= tolerance(y.dtype, y.device)
    assert relative_error(state, state_ref) <= STATE_TOLERANCE


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_steps(dtype):
    inputs = make_scan_inputs(1, 4, 8, 4, groups_b=2, groups_c=2, dtype=dtype, seed=1)
    y, state = step_through(inputs, softplus=True)
    y_ref, state_ref = reference64(inputs, softplus=True)
    assert y.dtype == dtype
    assert relative_error(y, y_ref) <= tolerance(dtype, y.device)
    assert relative_error(state, state_ref) <= STATE_TOLERANCE


def test_prefill_then_steps_equals_one_scan():
    inputs = make_scan_inputs(2, 6, 10, 4, groups_b=3, seed=2)
    prefill = {k: (v[..., :6] if k in ("u", "delta", "z", "B", "C") else v) for k, v in inputs.items()}
    y_head, state = selective_scan(**prefill, delta_softplus=True)
    y_tail, state = step_through(inputs, softplus=True, state=state, start=6)
    y_ref, state_ref = reference64(inputs, softplus=True)
    assert relative_error(torch.cat([y_head, y_tail], dim=-1), y_ref) <= 1e-5
    assert relative_error(state, state_ref) <= STATE_TOLERANCE


def test_state_is_updated_in_place_through_its_strides():
    inputs = make_scan_inputs(2, 4, 1, 3, seed=3)
    state = inputs["initial_state"].transpose(1, 2).contiguous().transpose(1, 2)
    assert not state.is_contiguous()
    before = state.clone()
    y, after = step_through(inputs, softplus=True, state=state)
    assert after is state and not torch.equal(state, before)
    y_ref, state_ref = reference64({**inputs, "initial_state": before}, softplus=True)
    assert relative_error(state, state_ref) <= STATE_TOLERANCE
    assert relative_error(y, y_ref) <= 1e-5


def _step_inputs(batch=2, dim=4, n_state=3, groups=2):
    return dict(
        state=torch.zeros(batch, dim, n_state), x=torch.randn(batch, dim), dt=torch.rand(batch, dim),
        A=-torch.rand(dim, n_state), B=torch.randn(batch, groups, n_state),
        C=torch.randn(batch, n_state), D=torch.randn(dim), z=torch.randn(batch, dim),
        dt_bias=torch.randn(dim),
    )


@pytest.mark.parametrize(
    "name, bad_shape, expected_text",
    [
        ("state", (2, 4), "state has rank 2 (2, 4), expected (B, D, N)"),
        ("x", (2, 5), "x is (2, 5), expected (B, D) like state = (2, 4)"),
        ("dt", (4,), "dt is (4,), expected (B, D) like state = (2, 4)"),
        ("A", (4, 2), "A is (4, 2), expected (D, N) like state = (4, 3)"),
        ("B", (2, 3, 3), "B has 3 groups, which does not divide D = 4"),
        ("B", (2, 2, 2), "B is (2, 2, 2), expected (B, G, N) = (2, 2, 3)"),
        ("C", (1, 3), "C is (1, 3), expected (B, N) = (2, 3)"),
        ("C", (2, 1, 3, 1), "C has rank 4 (2, 1, 3, 1), expected (B, N) or (B, G, N)"),
        ("D", (3,), "D is (3,), expected (D,) like state = (4,)"),
        ("z", (2, 4, 1), "z is (2, 4, 1), expected (B, D) like state = (2, 4)"),
        ("dt_bias", (2, 4), "dt_bias is (2, 4), expected (D,) like state = (4,)"),
    ],
)
def test_shape_errors_name_the_input_and_both_shapes(name, bad_shape, expected_text):
    inputs = _step_inputs()
    inputs[name] = torch.zeros(bad_shape)
    with pytest.raises(InputShapeError) as error:
        selective_state_update(**inputs)
    assert expected_text in str(error.value)


@pytest.mark.parametrize(
    "name, dtype, expected_text",
    [
        ("state", torch.float16, "state is float16, expected float32"),
        ("A", torch.bfloat16, "A is bfloat16, expected float32"),
        ("B", torch.float16, "B is float16, expected float32 to match x"),
        ("x", torch.float64, "x is float64, expected one of float32, float16, bfloat16"),
    ],
)
def test_dtype_errors_name_the_input(name, dtype, expected_text):
    inputs = _step_inputs()
    inputs[name] = inputs[name].to(dtype)
    with pytest.raises(InputShapeError, match=expected_text):
        selective_state_update(**inputs)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("batch, groups", [(1, None), (8, 4)])
def test_real_sizes_on_gpu(batch, groups, dtype):
    inputs = make_scan_inputs(batch, 1536, 64, 16, groups, groups, dtype=dtype, device="cuda")
    y_head, state = selective_scan(**{k: (v[..., :48] if k in ("u", "delta", "z", "B", "C") else v)
                                      for k, v in inputs.items()}, delta_softplus=True)
    y_tail, state = step_through(inputs, softplus=True, state=state, start=48)
    y_ref, state_ref = reference64(inputs, softplus=True)
    assert relative_error(torch.cat([y_head, y_tail], dim=-1), y_ref) <= tolerance(dtype, y_ref.device)
    assert relative_error(state, state_ref) <= STATE_TOLERANCE
