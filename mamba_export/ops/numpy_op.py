"""Our ops in numpy, as node implementations for ``onnx.reference``.

``onnx.reference.ReferenceEvaluator(model, new_ops=list(NUMPY_OPS))`` then runs
graphs that contain our custom nodes without the compiled library or PyTorch: a
portable second implementation of the contracts in
:mod:`mamba_export.ops.selective_scan`, :mod:`mamba_export.ops.causal_conv`,
:mod:`mamba_export.ops.residual_norm`, :mod:`mamba_export.ops.linear` and
:mod:`mamba_export.ops.last_argmax`.
Like every implementation each checks its inputs with the contract's
``check_inputs`` and computes in float32 whatever the I/O dtype.
"""

from __future__ import annotations

import numpy as np
from onnx.reference.op_run import OpRun

from mamba_export.errors import InputShapeError
from mamba_export.ops import causal_conv as conv_contract
from mamba_export.ops import last_argmax as argmax_contract
from mamba_export.ops import linear as linear_contract
from mamba_export.ops import residual_norm as norm_contract
from mamba_export.ops.selective_scan import (
    DOMAIN,
    LAYOUT_CHANNELS_LAST,
    OP_TYPE,
    SOFTPLUS_THRESHOLD,
    TO_CHANNELS_FIRST,
    TO_CHANNELS_LAST,
    WHOLE,
    check_inputs,
    check_layout,
    project_delta,
    take_windows,
)

INPUT_ORDER = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state", "delta_weight")


def _dtype_name(array) -> str:
    return np.asarray(array).dtype.name


def softplus(x: np.ndarray) -> np.ndarray:
    """torch's softplus with beta 1 and threshold 20 (no overflow above it)."""
    smooth = np.log1p(np.exp(np.minimum(x, SOFTPLUS_THRESHOLD)))
    return np.where(x > SOFTPLUS_THRESHOLD, x, smooth).astype(x.dtype)


def _per_channel(x: np.ndarray, dim: int) -> np.ndarray:
    """B or C as (B, D or 1, N, L): groups repeated over their D / G channels."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        return x[:, None]
    return np.repeat(x, dim // x.shape[1], axis=1)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None,
                   delta_softplus=False, layout=0, b_offset=WHOLE, c_offset=WHOLE, z_offset=WHOLE,
                   delta_weight=None, delta_offset=WHOLE):
    """The scan on numpy arrays.

    Layout 0: u, delta, z: (B, D, L); B, C: (B, N, L) or (B, G, N, L). Layout 1: u, delta,
    z: (B, L, D); B, C: (B, L, N) or (B, L, G, N), or with an offset >= 0 a (B, L, W) array
    read at channels [offset, offset + N) (z: + D). A: (D, N); D, delta_bias: (D,);
    initial_state: (B, D, N). With delta_weight (D, R) (layout 1), delta is a (B, L, W) array
    whose channels from delta_offset on are x_dt, and the scan's delta is x_dt @ delta_weight.T
    in float32. Returns y in u's layout and dtype and last_state: (B, D, N) float32.
    """
    named = dict(zip(INPUT_ORDER, (u, delta, A, B, C, D, z, delta_bias, initial_state, delta_weight), strict=True))
    present = {k: v for k, v in named.items() if v is not None}
    offsets = dict(b_offset=b_offset, c_offset=c_offset, z_offset=z_offset, delta_offset=delta_offset)
    dims = check_inputs({k: np.shape(v) for k, v in present.items()},
                        {k: _dtype_name(v) for k, v in present.items()}, layout=layout, offsets=offsets)
    plain = take_windows({k: np.asarray(v) for k, v in present.items()}, offsets, dims)
    if delta_weight is not None:
        plain["delta"] = project_delta(plain, offsets, dims)  # float32, not rounded to u's dtype
        del plain["delta_weight"]
    return _scan(**plain, dims=dims, delta_softplus=delta_softplus, layout=layout)


def _scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None, *, dims,
          delta_softplus=False, layout=0):
    """The plain contract on checked arrays, every input read whole (delta may be float32)."""
    if layout == LAYOUT_CHANNELS_LAST:
        named = dict(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias, initial_state=initial_state)
        first = {k: (np.transpose(v, TO_CHANNELS_FIRST[np.ndim(v)]) if k in ("u", "delta", "z", "B", "C")
                     and v is not None else v) for k, v in named.items()}
        y, h = _scan(**first, dims=dims, delta_softplus=delta_softplus)
        return np.ascontiguousarray(np.transpose(y, TO_CHANNELS_LAST[3])), h
    f32 = np.float32
    u32 = np.asarray(u, dtype=f32)
    dt = np.asarray(delta, dtype=f32)
    if delta_bias is not None:
        dt = dt + np.asarray(delta_bias, dtype=f32)[None, :, None]
    if delta_softplus:
        dt = softplus(dt)
    a = np.asarray(A, dtype=f32)
    b_all, c_all = _per_channel(B, dims.dim), _per_channel(C, dims.dim)
    if initial_state is None:
        h = np.zeros((dims.batch, dims.dim, dims.state), dtype=f32)
    else:
        h = np.array(initial_state, dtype=f32)
    y = np.empty((dims.batch, dims.dim, dims.length), dtype=f32)
    dtu = dt * u32
    for t in range(dims.length):
        h = np.exp(dt[:, :, t, None] * a) * h + dtu[:, :, t, None] * b_all[..., t]
        y[:, :, t] = np.sum(h * c_all[..., t], axis=-1, dtype=f32)
    if D is not None:
        y = y + np.asarray(D, dtype=f32)[None, :, None] * u32
    if z is not None:
        z32 = np.asarray(z, dtype=f32)
        with np.errstate(over="ignore"):  # exp(-z) = inf gives silu(z) = -0, as it should
            y = y * (z32 / (f32(1) + np.exp(-z32)))
    return y.astype(np.asarray(u).dtype), h


class SelectiveScan(OpRun):
    """The SelectiveScan node for ``onnx.reference.ReferenceEvaluator(new_ops=[...])``.

    The evaluator matches nodes by (op_domain, class name), hence the class name.
    """

    op_domain = DOMAIN

    def _run(self, u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None, delta_weight=None,
             delta_softplus=0, layout=0, b_offset=WHOLE, c_offset=WHOLE, z_offset=WHOLE, delta_offset=WHOLE):
        if delta_softplus not in (0, 1):
            raise InputShapeError(f"{OP_TYPE}: delta_softplus is {delta_softplus}, expected 0 or 1")
        return selective_scan(u, delta, A, B, C, D, z, delta_bias, initial_state, bool(delta_softplus),
                              check_layout(layout), b_offset=int(b_offset), c_offset=int(c_offset),
                              z_offset=int(z_offset), delta_weight=delta_weight, delta_offset=int(delta_offset))



def causal_conv1d(x, weight, bias=None, conv_state=None, mask=None, activation=0, x_offset=conv_contract.WHOLE):
    """The causal depthwise convolution on numpy arrays.

    x: (B, L, C), or with x_offset >= 0 a (B, L, W) array read at channels [x_offset,
    x_offset + C); weight: (C, K) float32; bias: (C,) float32; conv_state: (B, C, K-1);
    mask: (B, L) int64. Returns y: (B, L, C) and new_conv_state: (B, C, K-1) in x's dtype.
    """
    named = dict(x=x, weight=weight, bias=bias, conv_state=conv_state, mask=mask)
    present = {k: v for k, v in named.items() if v is not None}
    dims = conv_contract.check_inputs({k: np.shape(v) for k, v in present.items()},
                                      {k: _dtype_name(v) for k, v in present.items()}, x_offset=x_offset)
    conv_contract.check_activation(activation)
    x = conv_contract.take_window(np.asarray(x), x_offset, dims.channels)
    f32 = np.float32
    xs = np.asarray(x, dtype=f32)
    if mask is not None:
        keep = (np.asarray(mask) != 0)[:, :, None]
        xs = np.where(keep, xs, f32(0))  # a select: inf/NaN under the mask never reach the sum
    if conv_state is None:
        state = np.zeros((dims.batch, dims.width - 1, dims.channels), dtype=f32)
    else:
        state = np.asarray(conv_state, dtype=f32).transpose(0, 2, 1)
    window = np.concatenate([state, xs], axis=1)  # (B, K-1+L, C), oldest first
    taps = np.asarray(weight, dtype=f32)
    v = np.zeros((dims.batch, dims.length, dims.channels), dtype=f32)
    for k in range(dims.width):
        v = v + taps[:, k] * window[:, k:k + dims.length]
    if bias is not None:
        v = v + np.asarray(bias, dtype=f32)
    if activation == 1:
        with np.errstate(over="ignore"):  # exp(-v) = inf gives silu(v) = -0, as it should
            v = v / (f32(1) + np.exp(-v))
    if mask is not None:
        v = np.where(keep, v, f32(0))
    io_dtype = np.asarray(x).dtype
    new_state = window[:, dims.length:].transpose(0, 2, 1)
    return v.astype(io_dtype), np.ascontiguousarray(new_state).astype(io_dtype)


class CausalConv1d(OpRun):
    """The CausalConv1d node for ``onnx.reference.ReferenceEvaluator(new_ops=[...])``."""

    op_domain = DOMAIN

    def _run(self, x, weight, bias=None, conv_state=None, mask=None, activation=0, x_offset=conv_contract.WHOLE):
        return causal_conv1d(x, weight, bias, conv_state, mask, activation, int(x_offset))


def residual_rms_norm(x, weight, residual=None, epsilon=1e-6):
    """The residual sum and RMS norm on numpy arrays.

    x: (..., H); weight: (H,) in x's dtype; residual: (..., H) float32 or None. Returns y in
    x's dtype and residual_out: (..., H) float32.
    """
    named = dict(x=x, weight=weight, residual=residual)
    present = {k: v for k, v in named.items() if v is not None}
    norm_contract.check_inputs({k: np.shape(v) for k, v in present.items()},
                               {k: _dtype_name(v) for k, v in present.items()})
    f32 = np.float32
    s = np.asarray(x, dtype=f32)
    if residual is not None:
        s = s + np.asarray(residual, dtype=f32)
    epsilon = f32(norm_contract.check_epsilon(epsilon))
    inv = f32(1) / np.sqrt(np.mean(s * s, axis=-1, keepdims=True, dtype=f32) + epsilon)
    y = np.asarray(weight, dtype=f32) * (s * inv)
    return y.astype(np.asarray(x).dtype), np.ascontiguousarray(s, dtype=f32)


class ResidualRMSNorm(OpRun):
    """The ResidualRMSNorm node for ``onnx.reference.ReferenceEvaluator(new_ops=[...])``."""

    op_domain = DOMAIN

    def _run(self, x, weight, residual=None, epsilon=1e-6):
        return residual_rms_norm(x, weight, residual, epsilon)


def linear(x, weight):
    """The product with a constant weight on numpy arrays: x (..., K) times weight (N, K) transposed.

    Products and sums in float32 whatever the dtype, rounded once; returns y (..., N) in x's dtype.
    """
    linear_contract.check_inputs({"x": np.shape(x), "weight": np.shape(weight)},
                                 {"x": _dtype_name(x), "weight": _dtype_name(weight)})
    f32 = np.float32
    y = np.matmul(np.asarray(x, dtype=f32), np.asarray(weight, dtype=f32).T)
    return y.astype(np.asarray(x).dtype)


class Linear(OpRun):
    """The Linear node for ``onnx.reference.ReferenceEvaluator(new_ops=[...])``."""

    op_domain = DOMAIN

    def _run(self, x, weight):
        return (linear(x, weight),)


# Every custom node of our domain, for ``ReferenceEvaluator(model, new_ops=list(NUMPY_OPS))``.
def last_argmax(logits):
    """LastArgMax: (B, L, V) -> (B, 1) int64, the argmax of the last position in float32 (NumPy's
    rules: the first of equal maxima, the first NaN)."""
    argmax_contract.check_inputs({"logits": np.shape(logits)})
    last = np.asarray(logits)[:, -1, :].astype(np.float32)
    return np.argmax(last, axis=-1).astype(np.int64)[:, None]


class LastArgMax(OpRun):
    """The LastArgMax node for ``onnx.reference.ReferenceEvaluator(new_ops=[...])``."""

    op_domain = DOMAIN

    def _run(self, logits):
        return (last_argmax(logits),)


NUMPY_OPS = (SelectiveScan, CausalConv1d, ResidualRMSNorm, Linear, LastArgMax)
