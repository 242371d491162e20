"""SelectiveScan in numpy, as a node implementation for ``onnx.reference``.

``onnx.reference.ReferenceEvaluator(model, new_ops=[SelectiveScan])`` then runs
graphs that contain our custom node without the compiled library or PyTorch: a
portable second implementation of the contract in
:mod:`mamba_export.ops.selective_scan`. Like every implementation it checks the
inputs with ``check_inputs`` and computes in float32 whatever the I/O dtype.
"""

from __future__ import annotations

import numpy as np
from onnx.reference.op_run import OpRun

from mamba_export.errors import InputShapeError
from mamba_export.ops.selective_scan import (
    DOMAIN,
    LAYOUT_CHANNELS_LAST,
    OP_TYPE,
    SOFTPLUS_THRESHOLD,
    TO_CHANNELS_FIRST,
    TO_CHANNELS_LAST,
    check_inputs,
    check_layout,
)

INPUT_ORDER = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state")


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
                   delta_softplus=False, layout=0):
    """The scan on numpy arrays.

    Layout 0: u, delta, z: (B, D, L); B, C: (B, N, L) or (B, G, N, L). Layout 1: u, delta,
    z: (B, L, D); B, C: (B, L, N) or (B, L, G, N). A: (D, N); D, delta_bias: (D,);
    initial_state: (B, D, N). Returns y in u's layout and dtype and last_state: (B, D, N) float32.
    """
    named = dict(zip(INPUT_ORDER, (u, delta, A, B, C, D, z, delta_bias, initial_state), strict=True))
    present = {k: v for k, v in named.items() if v is not None}
    dims = check_inputs({k: np.shape(v) for k, v in present.items()},
                        {k: _dtype_name(v) for k, v in present.items()}, layout=layout)
    if layout == LAYOUT_CHANNELS_LAST:
        first = {k: (np.transpose(v, TO_CHANNELS_FIRST[np.ndim(v)]) if k in ("u", "delta", "z", "B", "C")
                     else v) for k, v in present.items()}
        y, h = selective_scan(**first, delta_softplus=delta_softplus)
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

    def _run(self, u, delta, A, B, C, D=None, z=None, delta_bias=None, initial_state=None,
             delta_softplus=0, layout=0):
        if delta_softplus not in (0, 1):
            raise InputShapeError(f"{OP_TYPE}: delta_softplus is {delta_softplus}, expected 0 or 1")
        return selective_scan(u, delta, A, B, C, D, z, delta_bias, initial_state, bool(delta_softplus),
                              check_layout(layout))

