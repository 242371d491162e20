"""Malformed feeds for the bad-input tests of every custom op.

A bad-input test gives one tensor of a valid feed another shape and expects the
kernel's error to be exactly the one the op's Python contract (check_inputs) gives;
this module builds those feeds and asks the contract, whichever op it is.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

from mamba_export.errors import InputShapeError


def contract_message(check_inputs, feeds, **attributes) -> str | None:
    """check_inputs()'s message for these tensors, or None when they are valid."""
    try:
        check_inputs({name: value.shape for name, value in feeds.items()}, **attributes)
    except InputShapeError as error:
        return str(error)
    return None


def assert_rejected_as_the_contract_says(session, feeds, expected: str, label: str = "") -> None:
    """The session refuses the feeds with InvalidArgument carrying check_inputs()'s message."""
    with pytest.raises(InvalidArgument) as caught:
        session.run(None, feeds)
    assert expected in str(caught.value), f"{label}: {caught.value}"


def with_shape(feeds, name, shape):
    """The feeds with tensor ``name`` replaced by zeros of ``shape`` (its dtype kept)."""
    return dict(feeds) | {name: np.zeros(shape, dtype=feeds[name].dtype)}


def perturb_shapes(draw: st.DrawFn, feeds: dict) -> dict:
    """The feeds with one or two tensors grown, shrunk, given an extra axis or one fewer."""
    for name in draw(st.lists(st.sampled_from(sorted(feeds)), min_size=1, max_size=2, unique=True)):
        shape = list(feeds[name].shape)
        edit = draw(st.sampled_from(["grow", "shrink", "add_dim", "drop_dim"]))
        if edit in ("grow", "shrink") and shape:
            axis = draw(st.integers(0, len(shape) - 1))
            shape[axis] = max(0, shape[axis] + (1 if edit == "grow" else -1))
        elif edit == "add_dim":
            shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(1, 3)))
        elif shape:
            shape.pop(draw(st.integers(0, len(shape) - 1)))
        feeds = with_shape(feeds, name, tuple(shape))
    return feeds
