"""The recurrent state carried from one call of an exported graph to the next.

A Mamba layer remembers two arrays: the last ``conv_kernel - 1`` inputs of its
causal convolution and the selective scan's state. :class:`MambaStates` holds
them for every layer, makes the zeros of a fresh prompt, checks what a caller
hands back, and maps to and from the graph's ``past.*`` / ``present.*`` names so
the model class never spells them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mamba_export import graph_io
from mamba_export.errors import InputShapeError


@dataclass(frozen=True)
class StateSpec:
    """Sizes and dtypes of the state of one export.

    conv_state: (batch, intermediate_size, conv_kernel - 1) in ``conv_dtype`` (the export dtype);
    ssm_state: (batch, intermediate_size, state_size) in ``ssm_dtype`` (float32).
    """

    num_layers: int
    intermediate_size: int
    conv_kernel: int
    state_size: int
    conv_dtype: np.dtype
    ssm_dtype: np.dtype

    def shape(self, kind: str, batch: int) -> tuple:
        return graph_io.state_shapes(batch, self.intermediate_size, self.conv_kernel, self.state_size)[kind]

    def dtype(self, kind: str) -> np.dtype:
        return self.conv_dtype if kind == "conv_state" else self.ssm_dtype

    def keys(self) -> list:
        """Every state tensor as (kind, layer), layer by layer: the keys of device state sets."""
        return [(kind, i) for i in range(self.num_layers) for kind in graph_io.STATE_KINDS]


@dataclass(frozen=True)
class MambaStates:
    """Per-layer states: ``conv[i]`` (batch, intermediate, conv_kernel - 1) and
    ``ssm[i]`` (batch, intermediate, state).

    Index it like a sequence of ``(conv_state, ssm_state)`` pairs, one per layer.
    """

    conv: tuple
    ssm: tuple

    def __len__(self) -> int:
        return len(self.conv)

    def __getitem__(self, layer: int) -> tuple:
        return self.conv[layer], self.ssm[layer]

    @property
    def batch_size(self) -> int:
        return int(self.conv[0].shape[0]) if self.conv else 0

    @classmethod
    def zeros(cls, spec: StateSpec, batch: int) -> MambaStates:
        """The state of a fresh prompt."""
        layers = range(spec.num_layers)
        conv = tuple(np.zeros(spec.shape("conv_state", batch), spec.conv_dtype) for _ in layers)
        ssm = tuple(np.zeros(spec.shape("ssm_state", batch), spec.ssm_dtype) for _ in layers)
        return cls(conv, ssm)

    @classmethod
    def from_presents(cls, outputs: dict, num_layers: int) -> MambaStates:
        """Collect ``present.{i}.*`` arrays from a graph run."""
        conv = tuple(outputs[graph_io.present_name(i, "conv_state")] for i in range(num_layers))
        ssm = tuple(outputs[graph_io.present_name(i, "ssm_state")] for i in range(num_layers))
        return cls(conv, ssm)

    def as_pasts(self) -> dict:
        """The ``past.{i}.*`` feeds of the next call."""
        feeds = {}
        for i, (conv, ssm) in enumerate(zip(self.conv, self.ssm, strict=True)):
            feeds[graph_io.past_name(i, "conv_state")] = conv
            feeds[graph_io.past_name(i, "ssm_state")] = ssm
        return feeds

    def select(self, rows) -> MambaStates:
        """The states of some batch rows (an index array or slice)."""
        return MambaStates(tuple(c[rows] for c in self.conv), tuple(s[rows] for s in self.ssm))

    @classmethod
    def concatenate(cls, parts) -> MambaStates:
        """The rows of several states, one after another along the batch axis (the inverse of select)."""
        parts = list(parts)
        if len(parts) == 1:
            return parts[0]
        layers = range(len(parts[0]))
        return cls(tuple(np.concatenate([p.conv[i] for p in parts]) for i in layers),
                   tuple(np.concatenate([p.ssm[i] for p in parts]) for i in layers))


def _as_pairs(states) -> tuple:
    if isinstance(states, MambaStates):
        return states.conv, states.ssm
    try:
        pairs = [tuple(pair) for pair in states]
    except TypeError as error:
        raise InputShapeError(f"states must be MambaStates or a sequence of (conv_state, ssm_state) "
                              f"pairs, got {type(states).__name__}") from error
    if any(len(pair) != 2 for pair in pairs):
        raise InputShapeError("states must hold one (conv_state, ssm_state) pair per layer")
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


def _check_array(name: str, value, shape: tuple, dtype: np.dtype) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != shape:
        raise InputShapeError(f"{name} is {array.shape}, expected {shape} "
                              "(batch, intermediate_size, conv_kernel - 1 or state_size)")
    if array.dtype != dtype:
        if not np.issubdtype(array.dtype, np.floating) and array.dtype.kind != "V":
            raise InputShapeError(f"{name} has dtype {array.dtype}, expected {np.dtype(dtype).name}")
        array = array.astype(dtype)
    return np.ascontiguousarray(array)


def check_states(states, spec: StateSpec, batch: int) -> MambaStates:
    """Validate states given by a caller against ``spec`` for ``batch`` rows.

    Floating arrays of another precision are converted (with a copy); anything else
    raises :class:`InputShapeError` naming the layer, the expected and the actual value.
    """
    conv, ssm = _as_pairs(states)
    if len(conv) != spec.num_layers:
        raise InputShapeError(f"states has {len(conv)} layers, the model has {spec.num_layers}")
    checked = {"conv_state": [], "ssm_state": []}
    for kind, arrays in (("conv_state", conv), ("ssm_state", ssm)):
        for i, value in enumerate(arrays):
            name = graph_io.past_name(i, kind)
            checked[kind].append(_check_array(name, value, spec.shape(kind, batch), spec.dtype(kind)))
    return MambaStates(tuple(checked["conv_state"]), tuple(checked["ssm_state"]))
