"""Packed inputs of both ops (offset attributes), shared by the CPU and CUDA tests.

A packed case takes a plain case's inputs and embeds B, C and z (SelectiveScan) or x
(CausalConv1d) in wider (B, L, W) tensors at random offsets, the other channels filled
with NaN: a kernel that reads one element outside its window, or with the wrong row
stride, puts a NaN into an output. The packed run must give the very bits of the
plain run on the same provider (the same values reach the same arithmetic), and the
plain run is itself held to the float64 reference by the callers.
"""

from __future__ import annotations

import numpy as np

from tests.custom_ops.scan_cases import run as run_scan
from tests.custom_ops.scan_cases import run_into
from tests.support.one_conv_node import causal_conv_model
from tests.support.one_node import selective_scan_model


def embed(window: np.ndarray, offset: int, width: int) -> np.ndarray:
    """(B, L, w) -> (B, L, width) holding ``window`` at channels [offset, offset + w), NaN elsewhere."""
    batch, length, channels = window.shape
    packed = np.full((batch, length, width), np.nan, dtype=window.dtype)
    packed[:, :, offset:offset + channels] = window
    return packed


def pack_scan(inputs: dict, seed: int, shared_bc: bool) -> tuple[dict, dict]:
    """Channels-last, ungrouped scan inputs -> (packed inputs, offset attributes). With
    ``shared_bc`` B and C sit side by side in one tensor fed to both (as x_proj's output
    is: dt, then B, then C), and C's input is dropped."""
    rng = np.random.default_rng(seed)
    packed, offsets = dict(inputs), {}
    state = inputs["B"].shape[2]
    if shared_bc:
        lead, tail = (int(v) for v in rng.integers(0, 5, 2))
        both = np.concatenate([inputs["B"], inputs["C"]], axis=2)
        packed["B"] = embed(both, lead, lead + 2 * state + tail)
        del packed["C"]
        offsets |= {"b_offset": lead, "c_offset": lead + state}
    else:
        for name in ("B", "C"):
            lead, tail = (int(v) for v in rng.integers(0, 5, 2))
            packed[name] = embed(inputs[name], lead, lead + state + tail)
            offsets[f"{name.lower()}_offset"] = lead
    if "z" in inputs:
        dim = inputs["z"].shape[2]
        lead = int(rng.integers(0, 2 * dim + 1))  # dim: the second half of an in_proj output
        packed["z"] = embed(inputs["z"], lead, lead + dim + int(rng.integers(0, 3)))
        offsets["z_offset"] = lead
    return packed, offsets


def packed_scan_model(io_dtype: str, present: tuple, delta_softplus: bool, offsets: dict,
                      shared_bc: bool):
    return selective_scan_model(io_dtype, present=present, delta_softplus=int(delta_softplus), layout=1,
                                offsets=offsets, shared_bc=shared_bc)


def check_packed_scan(session_for, inputs: dict, plain: tuple, io_dtype: str, delta_softplus: bool, seed: int,
                      shared_bc: bool) -> None:
    """The packed form of ``inputs`` (channels last, ungrouped) gives ``plain``'s bits.
    ``session_for(model)`` opens a session on the provider under test."""
    present = tuple(name for name in ("D", "z", "delta_bias", "initial_state") if name in inputs)
    packed, offsets = pack_scan(inputs, seed, shared_bc)
    model = packed_scan_model(io_dtype, present, delta_softplus, offsets, shared_bc)
    y, last_state = run_scan(session_for(model), packed)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(last_state)), f"read outside a window: {offsets}"
    np.testing.assert_array_equal(y, plain[0], err_msg=f"y differs with {offsets}")
    np.testing.assert_array_equal(last_state, plain[1], err_msg=f"last_state differs with {offsets}")


def pack_conv(inputs: dict, seed: int, lead: int | None = None, tail: int | None = None) -> tuple[dict, int]:
    """Conv inputs -> (inputs with x embedded in a wider tensor, x_offset). ``lead`` and ``tail``
    (channels before and after the window) are random unless given."""
    rng = np.random.default_rng(seed)
    channels = inputs["x"].shape[2]
    lead = int(rng.integers(0, channels + 3)) if lead is None else lead
    tail = int(rng.integers(0, channels + 3)) if tail is None else tail
    packed = dict(inputs)
    packed["x"] = embed(inputs["x"], lead, lead + channels + tail)
    return packed, lead


def run_conv(session, inputs: dict):
    """Run a one-node CausalConv1d session whose x may be packed -> (y, new_conv_state) in T."""
    x, weight = inputs["x"], inputs["weight"]
    channels, width = weight.shape
    y = np.empty((x.shape[0], x.shape[1], channels), dtype=x.dtype)
    state = np.empty((x.shape[0], channels, width - 1), dtype=x.dtype)
    run_into(session, inputs, {"y": y, "new_conv_state": state})
    return y, state


def check_packed_conv(session_for, inputs: dict, plain: tuple, io_dtype: str, activation: int,
                      seed: int, lead: int | None = None, tail: int | None = None) -> None:
    """The packed form of ``inputs`` gives ``plain``'s bits (y and new_conv_state of the plain run on
    the same provider). Masked positions of x may hold inf/NaN already; the NaN outside the
    window must never leak. ``lead``, ``tail``: as :func:`pack_conv`."""
    present = tuple(name for name in ("bias", "conv_state", "mask") if name in inputs)
    packed, x_offset = pack_conv(inputs, seed, lead, tail)
    model = causal_conv_model(io_dtype, present=present, activation=activation, x_offset=x_offset)
    y, state = run_conv(session_for(model), packed)
    np.testing.assert_array_equal(np.asarray(y, np.float64), np.asarray(plain[0], np.float64),
                                  err_msg=f"y differs with x_offset {x_offset}")
    np.testing.assert_array_equal(np.asarray(state, np.float64), np.asarray(plain[1], np.float64),
                                  err_msg=f"new_conv_state differs with x_offset {x_offset}")
