"""The float64 CausalConv1d reference against computations that share none of its code.

Everything else is checked against this reference, so it is checked here against
torch's own grouped conv1d over the concatenated window, a hand-written element,
and the masking rules spelled out one position at a time.
"""

from __future__ import annotations

import pytest
import torch

from mamba_export.errors import InputShapeError
from mamba_export.ops.reference import causal_conv1d


def _inputs(batch=2, length=7, channels=5, width=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(x=torch.randn(batch, length, channels, generator=g, dtype=torch.float64),
                weight=torch.randn(channels, width, generator=g, dtype=torch.float64),
                bias=torch.randn(channels, generator=g, dtype=torch.float64),
                conv_state=torch.randn(batch, channels, width - 1, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("width", [1, 2, 4])
@pytest.mark.parametrize("activation", [0, 1])
def test_matches_torch_grouped_conv1d(width, activation):
    a = _inputs(width=width)
    window = torch.cat([a["conv_state"], a["x"].transpose(1, 2)], dim=2)
    expected = torch.nn.functional.conv1d(window, a["weight"][:, None, :], a["bias"], groups=5).transpose(1, 2)
    if activation:
        expected = expected * torch.sigmoid(expected)
    y, state = causal_conv1d(**a, activation=activation)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state, window[:, :, window.shape[2] - (width - 1):], rtol=0, atol=0)


def test_one_element_by_hand():
    a = _inputs(batch=1, length=3, channels=2, width=3)
    y, _ = causal_conv1d(**a)
    w, s, x = a["weight"][1], a["conv_state"][0, 1], a["x"][0, :, 1]
    # t = 1: window = (s0, s1, x0, x1, x2), taps at window[1], window[2], window[3]; tap 2 on the newest (x1).
    expected = a["bias"][1] + w[0] * s[1] + w[1] * x[0] + w[2] * x[1]
    assert abs(float(y[0, 1, 1] - expected)) < 1e-12


def test_absent_state_and_bias_are_zeros():
    a = _inputs()
    y, state = causal_conv1d(a["x"], a["weight"])
    y0, state0 = causal_conv1d(a["x"], a["weight"], torch.zeros(5, dtype=torch.float64),
                               torch.zeros_like(a["conv_state"]))
    torch.testing.assert_close(y, y0, rtol=0, atol=0)
    torch.testing.assert_close(state, state0, rtol=0, atol=0)


def test_mask_selects_zero_input_and_zero_output_without_leaking_nan():
    a = _inputs(batch=1, length=5, channels=3, width=3)
    mask = torch.tensor([[0, 1, 0, 2, 1]])
    x = a["x"].clone()
    x[0, 0], x[0, 2] = float("nan"), float("inf")
    y, state = causal_conv1d(x, a["weight"], a["bias"], a["conv_state"], mask, activation=1)
    assert torch.isfinite(y).all() and torch.isfinite(state).all()
    assert torch.equal(y[0, 0], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(y[0, 2], torch.zeros(3, dtype=torch.float64))
    zeroed = a["x"].clone()
    zeroed[0, 0], zeroed[0, 2] = 0.0, 0.0
    y_zeroed, state_zeroed = causal_conv1d(zeroed, a["weight"], a["bias"], a["conv_state"], activation=1)
    keep = (mask != 0)[0]
    torch.testing.assert_close(y[0, keep], y_zeroed[0, keep], rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(state, state_zeroed, rtol=0, atol=0)


def test_length_0_passes_the_state_through():
    a = _inputs(length=0)
    y, state = causal_conv1d(**a)
    assert y.shape == (2, 0, 5)
    assert torch.equal(state, a["conv_state"])
    assert torch.equal(causal_conv1d(a["x"], a["weight"])[1], torch.zeros(2, 5, 3, dtype=torch.float64))


def test_chaining_two_calls_equals_one():
    a = _inputs(length=11)
    mask = (torch.arange(11) % 4 != 1).long().expand(2, 11).contiguous()
    y, state = causal_conv1d(**a, mask=mask, activation=1)
    y1, mid = causal_conv1d(a["x"][:, :6], a["weight"], a["bias"], a["conv_state"], mask[:, :6], 1)
    y2, end = causal_conv1d(a["x"][:, 6:], a["weight"], a["bias"], mid, mask[:, 6:], 1)
    # The same sums in the same order; torch's vector paths may round the last bit differently.
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(end, state, rtol=0, atol=0)


def test_half_inputs_come_back_in_their_dtype():
    a = {k: v.to(torch.bfloat16) if k in ("x", "conv_state") else v.float() for k, v in _inputs().items()}
    y, state = causal_conv1d(**a, activation=1)
    assert y.dtype == state.dtype == torch.bfloat16


def test_checks_the_contract():
    a = _inputs()
    with pytest.raises(InputShapeError, match=r"conv_state is \(2, 5, 2\), expected \(2, 5, 3\)"):
        causal_conv1d(a["x"], a["weight"], conv_state=a["conv_state"][:, :, 1:])
    with pytest.raises(InputShapeError, match="attribute activation is 3"):
        causal_conv1d(a["x"], a["weight"], activation=3)
