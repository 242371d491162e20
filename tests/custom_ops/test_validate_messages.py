"""validate.cc says exactly what check_inputs() in the Python contract says.

ONNX Runtime rejects wrong dtypes and missing required inputs before the kernel's
checks run, so those messages cannot be reached through a session. Here the C++
validation is compiled on its own with a small driver (custom_ops/tests/
validate_probe.cc) and fed thousands of generated input descriptions, valid and
not; each must give the Python message word for word, or the same dimensions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mamba_export.errors import InputShapeError
from mamba_export.ops.selective_scan import INPUTS, IO_DTYPES, REQUIRED_INPUTS, check_inputs
from tests.support.validate_probe import DTYPES, build_probe, input_items, run_lines


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    return build_probe(tmp_path_factory.mktemp("probe"), "selective_scan", "validate_probe.cc")


def run_probe(probe: Path, cases: list[dict], layouts: list[int] | None = None) -> list[str]:
    layouts = layouts or [0] * len(cases)
    return run_lines(probe, [";".join([f"layout={layout}"] + input_items(case))
                             for case, layout in zip(cases, layouts, strict=True)])


def python_result(case: dict, layout: int = 0) -> str:
    shapes = {name: shape for name, (shape, _) in case.items()}
    dtypes = {name: dtype for name, (_, dtype) in case.items()}
    try:
        dims = check_inputs(shapes, dtypes, layout=layout)
    except InputShapeError as error:
        return str(error)
    return ok_line(dims, dtypes)


def ok_line(dims, dtypes: dict) -> str:
    """The probe's line for valid inputs."""
    return (f"OK {dims.batch} {dims.dim} {dims.length} {dims.state} {dims.groups_b} {dims.groups_c} "
            f"{IO_DTYPES.index(dtypes['u'])} {dims.rank}")


def valid_case(rng, layout: int = 0) -> dict:
    batch, dim, length, state = (int(rng.integers(0, 4)), int(rng.choice([1, 2, 4, 6])),
                                 int(rng.integers(0, 5)), int(rng.integers(0, 5)))
    io = str(rng.choice(IO_DTYPES))

    def bc():
        groups = int(rng.choice([0] + [g for g in range(1, dim + 1) if dim % g == 0]))
        if layout == 1:
            return (batch, length, groups, state) if groups else (batch, length, state)
        return (batch, groups, state, length) if groups else (batch, state, length)

    seq = (batch, length, dim) if layout == 1 else (batch, dim, length)
    shapes = {"u": seq, "delta": seq, "A": (dim, state), "B": bc(),
              "C": bc(), "D": (dim,), "z": seq, "delta_bias": (dim,),
              "initial_state": (batch, dim, state)}
    return {spec.name: (shapes[spec.name], io if spec.dtype == "T" else "float32") for spec in INPUTS
            if spec.name in shapes}


def break_case(rng, case: dict) -> dict:
    """Drop, reshape or retype one or two inputs (or none)."""
    case = dict(case)
    for _ in range(int(rng.integers(0, 3))):
        name = str(rng.choice(sorted(case))) if case else "u"
        if name not in case:
            continue
        shape, dtype = case[name]
        edit = rng.integers(0, 5)
        if edit == 0 and (name not in REQUIRED_INPUTS or rng.random() < 0.3):
            del case[name]
        elif edit == 1:
            case[name] = (shape, str(rng.choice(DTYPES)))
        elif edit == 2 and shape:
            axis = int(rng.integers(0, len(shape)))
            case[name] = (shape[:axis] + (max(0, shape[axis] + int(rng.choice([-1, 1]))),) + shape[axis + 1:],
                          dtype)
        elif edit == 3:
            case[name] = (shape + (int(rng.integers(1, 3)),), dtype)
        elif shape:
            case[name] = (shape[:-1], dtype)
    return case


@pytest.mark.parametrize("layout", [0, 1], ids=["channels_first", "channels_last"])
def test_messages_and_dims_agree_on_generated_cases(probe, layout):
    rng = np.random.default_rng(2024 + layout)
    cases = [break_case(rng, valid_case(rng, layout)) for _ in range(4000)]
    expected = [python_result(case, layout) for case in cases]
    assert sum(line.startswith("OK") for line in expected) > 300, "too few valid cases to compare dims"
    assert len({line.split(":")[1].split()[0] for line in expected if ":" in line}) >= 8
    for case, want, got in zip(cases, expected, run_probe(probe, cases, [layout] * len(cases)), strict=True):
        assert got == want, f"{case}"


def test_unknown_layout_gives_the_contracts_message(probe):
    case = valid_case(np.random.default_rng(0))
    message = "SelectiveScan: attribute layout is 3, expected 0 (channels first) or 1 (channels last)"
    assert run_probe(probe, [case], [3]) == [message]
    assert python_result(case, 3) == message


@pytest.mark.parametrize(("case_edit", "message"), [
    (lambda c: c.pop("C"), "SelectiveScan: required input C is missing"),
    (lambda c: c.update(A=((8, 4), "float16")),
     "SelectiveScan: A is float16, expected float32 (parameters and state are always float32)"),
    (lambda c: c.update(delta=((2, 8, 16), "float16")),
     "SelectiveScan: delta is float16, expected float32 to match u"),
    (lambda c: c.update(u=((2, 8, 16), "float64")),
     "SelectiveScan: u is float64, expected one of float32, float16, bfloat16"),
])
def test_messages_ort_does_not_let_through(probe, case_edit, message):
    case = {spec.name: (shape, "float32") for spec, shape in zip(INPUTS[:9], [
        (2, 8, 16), (2, 8, 16), (8, 4), (2, 4, 16), (2, 4, 16), (8,), (2, 8, 16), (8,), (2, 8, 4)],
        strict=True)}
    case_edit(case)
    assert run_probe(probe, [case]) == [message]
    assert python_result(case) == message


def offset_case(rng) -> tuple[dict, dict]:
    """A channels-last case whose B, C and z may be read at offsets of wider tensors, often
    broken (a window past W, a grouped B, another batch or length, an offset in the wrong
    range), and its offset attributes."""
    case = valid_case(rng, 1)
    batch, length, dim = case["u"][0]
    state = case["A"][0][1]
    offsets = {}
    for name, attribute, width in (("B", "b_offset", state), ("C", "c_offset", state), ("z", "z_offset", dim)):
        if rng.random() < 0.3:
            continue
        offset = int(rng.integers(-2, 4))
        offsets[attribute] = offset
        shape, dtype = case[name]
        wide = (batch, length, max(0, offset) + width + int(rng.integers(-1, 3)))
        case[name] = (wide if rng.random() < 0.85 else shape, dtype)
    return break_case(rng, case) if rng.random() < 0.3 else case, offsets


def test_offset_messages_and_dims_agree_on_generated_cases(probe):
    rng = np.random.default_rng(7)
    drawn = [offset_case(rng) for _ in range(3000)]
    expected = []
    for case, offsets in drawn:
        shapes = {name: shape for name, (shape, _) in case.items()}
        dtypes = {name: dtype for name, (_, dtype) in case.items()}
        try:
            expected.append(ok_line(check_inputs(shapes, dtypes, layout=1, offsets=offsets), dtypes))
        except InputShapeError as error:
            expected.append(str(error))
    assert sum(line.startswith("OK") for line in expected) > 300, "too few valid cases to compare dims"
    assert sum("_offset" in line for line in expected) > 300, "too few offset messages"
    lines = [";".join(["layout=1"] + [f"{k}={v}" for k, v in offsets.items()] + input_items(case))
             for case, offsets in drawn]
    for (case, offsets), want, got in zip(drawn, expected, run_lines(probe, lines), strict=True):
        assert got == want, f"{offsets} {case}"


def projected_case(rng) -> tuple[dict, dict, int]:
    """A case of the projected delta: delta_weight (D, R) and delta a (B, L, W) tensor read from
    delta_offset on, often broken (W too small, an offset out of range, no weight, a weight of
    the wrong shape or dtype, layout 0), with its offset attributes and its layout."""
    layout = 1 if rng.random() < 0.85 else 0
    case = valid_case(rng, layout)
    batch, dim = case["u"][0][0], case["A"][0][0]
    length = case["u"][0][1] if layout == 1 else case["u"][0][2]
    rank = int(rng.integers(0, 4))
    offset = int(rng.integers(-2, 4)) if rng.random() < 0.9 else -1
    offsets = {"delta_offset": offset} if rng.random() < 0.9 else {}
    io = case["u"][1]
    case["delta"] = ((batch, length, max(0, offset) + rank + int(rng.integers(-1, 3))), io)
    if rng.random() < 0.9:
        weight = (dim, rank) if rng.random() < 0.85 else (dim + 1, rank)
        case["delta_weight"] = (weight, "float32" if rng.random() < 0.9 else io)
    return (break_case(rng, case) if rng.random() < 0.2 else case), offsets, layout


def test_projected_delta_messages_and_dims_agree_on_generated_cases(probe):
    rng = np.random.default_rng(11)
    drawn = [projected_case(rng) for _ in range(3000)]
    expected = []
    for case, offsets, layout in drawn:
        shapes = {name: shape for name, (shape, _) in case.items()}
        dtypes = {name: dtype for name, (_, dtype) in case.items()}
        try:
            expected.append(ok_line(check_inputs(shapes, dtypes, layout=layout, offsets=offsets), dtypes))
        except InputShapeError as error:
            expected.append(str(error))
    assert sum(line.startswith("OK") and not line.endswith(" 0") for line in expected) > 300, "too few projected"
    assert sum("delta_offset" in line for line in expected) > 200, "too few delta_offset messages"
    assert sum("delta_weight" in line for line in expected) > 100, "too few delta_weight messages"
    lines = [";".join([f"layout={layout}"] + [f"{k}={v}" for k, v in offsets.items()] + input_items(case))
             for case, offsets, layout in drawn]
    for (case, offsets, layout), want, got in zip(drawn, expected, run_lines(probe, lines), strict=True):
        assert got == want, f"{layout} {offsets} {case}"
