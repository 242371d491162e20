"""The float64 reference scan against computations that share none of its code.

Everything else is checked against this reference, so it is checked here against
a hand-written single step, a closed (non-recursive) formula for the whole
sequence, and a per-channel run that does not use its group expansion.
"""

import math

import pytest
import torch

from mamba_export.errors import InputShapeError
from mamba_export.ops.reference import selective_scan, softplus


def _inputs(batch=2, dim=4, length=5, n_state=3, groups=None, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    proj = (batch, n_state, length) if groups is None else (batch, groups, n_state, length)
    return dict(
        u=torch.randn(batch, dim, length, generator=gen, dtype=dtype),
        delta=torch.randn(batch, dim, length, generator=gen, dtype=dtype),
        A=-torch.rand(dim, n_state, generator=gen, dtype=dtype) - 0.1,
        B=torch.randn(*proj, generator=gen, dtype=dtype),
        C=torch.randn(*proj, generator=gen, dtype=dtype),
        D=torch.randn(dim, generator=gen, dtype=dtype),
        z=torch.randn(batch, dim, length, generator=gen, dtype=dtype),
        delta_bias=torch.randn(dim, generator=gen, dtype=dtype),
        initial_state=torch.randn(batch, dim, n_state, generator=gen, dtype=dtype),
    )


def test_one_step_matches_the_formula_written_out():
    x = _inputs(batch=1, dim=2, length=1, n_state=3)
    y, last = selective_scan(**x, delta_softplus=True)
    for d in range(2):
        raw = float(x["delta"][0, d, 0] + x["delta_bias"][d])
        dt = math.log(1.0 + math.exp(raw))
        u = float(x["u"][0, d, 0])
        h = [math.exp(dt * float(x["A"][d, n])) * float(x["initial_state"][0, d, n])
             + dt * float(x["B"][0, n, 0]) * u for n in range(3)]
        out = sum(float(x["C"][0, n, 0]) * h[n] for n in range(3)) + float(x["D"][d]) * u
        gate = float(x["z"][0, d, 0])
        out *= gate / (1.0 + math.exp(-gate))
        assert y[0, d, 0].item() == pytest.approx(out, rel=1e-12, abs=1e-12)
        assert last[0, d].tolist() == pytest.approx(h, rel=1e-12, abs=1e-12)


def test_channels_last_steps_match_the_formula_written_out():
    """Layout 1, written out with its own indexing: u[b, t, d], B[b, t, g, n]; two steps."""
    dim, groups, n_state, length = 4, 2, 3, 2
    gen = torch.Generator().manual_seed(7)
    x = dict(u=torch.randn(1, length, dim, generator=gen, dtype=torch.float64),
             delta=torch.rand(1, length, dim, generator=gen, dtype=torch.float64),
             A=-torch.rand(dim, n_state, generator=gen, dtype=torch.float64) - 0.1,
             B=torch.randn(1, length, groups, n_state, generator=gen, dtype=torch.float64),
             C=torch.randn(1, length, n_state, generator=gen, dtype=torch.float64),
             D=torch.randn(dim, generator=gen, dtype=torch.float64),
             z=torch.randn(1, length, dim, generator=gen, dtype=torch.float64),
             initial_state=torch.randn(1, dim, n_state, generator=gen, dtype=torch.float64))
    y, last = selective_scan(**x, layout=1)
    assert y.shape == (1, length, dim)
    for d in range(dim):
        g = d // (dim // groups)
        h = [float(x["initial_state"][0, d, n]) for n in range(n_state)]
        for t in range(length):
            dt, u = float(x["delta"][0, t, d]), float(x["u"][0, t, d])
            h = [math.exp(dt * float(x["A"][d, n])) * h[n] + dt * float(x["B"][0, t, g, n]) * u
                 for n in range(n_state)]
            out = sum(float(x["C"][0, t, n]) * h[n] for n in range(n_state)) + float(x["D"][d]) * u
            gate = float(x["z"][0, t, d])
            out *= gate / (1.0 + math.exp(-gate))
            assert y[0, t, d].item() == pytest.approx(out, rel=1e-12, abs=1e-12)
        assert last[0, d].tolist() == pytest.approx(h, rel=1e-12, abs=1e-12)


def _closed_form(x):
    """h_t = exp(A * sum_{r<=t} dt_r) h0 + sum_{s<=t} exp(A * sum_{s<r<=t} dt_r) dt_s B_s u_s."""
    dt = x["delta"]  # no bias, no softplus: delta is the time step
    cum = torch.cumsum(dt, dim=-1)  # (B, D, L)
    a = x["A"][None, :, :, None]  # (1, D, N, 1)
    length = dt.shape[-1]
    ys = []
    for t in range(length):
        decay_from = torch.exp(a * (cum[:, :, None, t:t + 1] - cum[:, :, None, :t + 1]))  # (B, D, N, t+1)
        drive = (dt * x["u"])[:, :, None, :t + 1] * x["B"][:, None, :, :t + 1]
        h = (decay_from * drive).sum(-1) + torch.exp(a[..., 0] * cum[:, :, None, t]) * x["initial_state"]
        ys.append((h * x["C"][:, None, :, t]).sum(-1))
    return torch.stack(ys, dim=-1), h


def test_sequence_matches_the_closed_form():
    x = _inputs(length=7, seed=1)
    x["delta"] = x["delta"].abs() * 0.3
    y, last = selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], initial_state=x["initial_state"])
    y_closed, h_closed = _closed_form(x)
    torch.testing.assert_close(y, y_closed, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(last, h_closed, rtol=1e-10, atol=1e-12)


def test_float32_agrees_with_float64():
    x64 = _inputs(length=16, seed=2)
    x32 = {k: v.float() for k, v in x64.items()}
    y64, h64 = selective_scan(**x64, delta_softplus=True)
    y32, h32 = selective_scan(**x32, delta_softplus=True)
    assert y32.dtype == torch.float32 and h32.dtype == torch.float32 and h64.dtype == torch.float64
    # float32 rounding over 16 short steps: a few hundred ulps at most.
    assert ((y32.double() - y64).abs().max() / y64.abs().max()) <= 1e-5
    assert ((h32.double() - h64).abs().max() / h64.abs().max()) <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_are_computed_in_float32(dtype):
    x = {k: (v.to(dtype) if k in ("u", "delta", "B", "C", "z") else v.float())
         for k, v in _inputs(seed=3).items()}
    y, h = selective_scan(**x, delta_softplus=True)
    upcast = {k: v.float() for k, v in x.items()}
    y32, h32 = selective_scan(**upcast, delta_softplus=True)
    assert y.dtype == dtype and h.dtype == torch.float32
    torch.testing.assert_close(y, y32.to(dtype), rtol=0, atol=0)
    torch.testing.assert_close(h, h32, rtol=0, atol=0)


@pytest.mark.parametrize("with_initial_state", [True, False])
def test_empty_sequence_returns_the_initial_state(with_initial_state):
    x = _inputs(length=0)
    if not with_initial_state:
        x["initial_state"] = None
    y, last = selective_scan(**x, delta_softplus=True)
    assert y.shape == (2, 4, 0)
    expected = x["initial_state"] if with_initial_state else torch.zeros(2, 4, 3, dtype=torch.float64)
    torch.testing.assert_close(last, expected, rtol=0, atol=0)


@pytest.mark.parametrize("dim, groups", [(6, 3), (6, 2), (4, 4)])
def test_group_g_serves_channels_g_times_d_over_g(dim, groups):
    x = _inputs(dim=dim, groups=groups, seed=4)
    y, last = selective_scan(**x, delta_softplus=True)
    per_group = dim // groups
    for d in range(dim):
        g = d // per_group
        one = {k: v for k, v in x.items()}
        for name in ("u", "delta", "z", "initial_state"):
            one[name] = x[name][:, d:d + 1]
        for name in ("A", "D", "delta_bias"):
            one[name] = x[name][d:d + 1]
        one["B"], one["C"] = x["B"][:, g], x["C"][:, g]
        y_d, last_d = selective_scan(**one, delta_softplus=True)
        torch.testing.assert_close(y[:, d:d + 1], y_d, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(last[:, d:d + 1], last_d, rtol=1e-12, atol=1e-12)


def test_softplus_is_torchs_with_threshold_20():
    x = torch.tensor([-50.0, -5.0, 0.0, 5.0, 19.999, 20.0, 20.001, 50.0], dtype=torch.float64)
    torch.testing.assert_close(softplus(x), torch.nn.functional.softplus(x), rtol=1e-15, atol=0)
    assert softplus(x)[-2].item() == 20.001  # identity above the threshold


def test_rejects_inputs_that_break_the_contract():
    x = _inputs()
    x["C"] = x["C"][:, :2]
    with pytest.raises(InputShapeError, match="C is"):
        selective_scan(**x)
