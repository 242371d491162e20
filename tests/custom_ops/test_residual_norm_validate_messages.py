"""residual_norm/validate.cc says exactly what check_inputs() in mamba_export/ops/residual_norm.py says.

ONNX Runtime rejects wrong dtypes and missing required inputs before the kernel's checks
run, so those messages cannot be reached through a session. Here the C++ validation is
compiled on its own with a small driver (custom_ops/tests/residual_norm_probe.cc, built by
tests/support/validate_probe.py) and fed
generated input descriptions, valid and not; each must give the Python message word for
word, or the same sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mamba_export.errors import InputShapeError
from mamba_export.ops.residual_norm import INPUTS, IO_DTYPES, check_inputs
from tests.support.validate_probe import DTYPES, build_probe, input_items, run_lines


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    return build_probe(tmp_path_factory.mktemp("probe"), "residual_norm", "residual_norm_probe.cc")


def run_probe(probe: Path, cases: list[dict]) -> list[str]:
    return run_lines(probe, [";".join(input_items(case)) for case in cases])


def python_result(case: dict) -> str:
    shapes = {name: shape for name, (shape, _) in case.items()}
    dtypes = {name: dtype for name, (_, dtype) in case.items()}
    try:
        dims = check_inputs(shapes, dtypes)
    except InputShapeError as error:
        return str(error)
    return f"OK {dims.rows} {dims.hidden} {IO_DTYPES.index(dtypes['x'])}"


def valid_case(rng) -> dict:
    shape = tuple(int(d) for d in rng.integers(0, 4, int(rng.integers(0, 3)))) + (int(rng.integers(0, 9)),)
    io = str(rng.choice(IO_DTYPES))
    shapes = {"x": shape, "weight": shape[-1:], "residual": shape}
    case = {spec.name: (shapes[spec.name], io if spec.dtype == "T" else spec.dtype) for spec in INPUTS}
    if rng.random() < 0.3:
        del case["residual"]
    return case


def break_case(rng, case: dict) -> dict:
    """Drop, reshape or retype one or two inputs (or none)."""
    case = dict(case)
    for _ in range(int(rng.integers(0, 3))):
        name = str(rng.choice(sorted(case)))
        shape, dtype = case[name]
        edit = rng.integers(0, 4)
        if edit == 0:
            del case[name]
        elif edit == 1:
            case[name] = (shape, str(rng.choice(DTYPES)))
        elif edit == 2 and shape:
            axis = int(rng.integers(0, len(shape)))
            case[name] = (shape[:axis] + (shape[axis] + int(rng.choice([-1, 1])),) + shape[axis + 1:], dtype)
        else:
            case[name] = (shape + (1,), dtype) if rng.random() < 0.5 else (shape[1:], dtype)
    return case


def test_messages_and_sizes_agree_with_python(probe):
    rng = np.random.default_rng(0)
    cases = [break_case(rng, valid_case(rng)) for _ in range(3000)]
    cases = [case for case in cases if "x" in case and "weight" in case or rng.random() < 0.2]
    outputs = run_probe(probe, cases)
    assert len(outputs) == len(cases)
    mismatches = [(case, out, python_result(case)) for case, out in zip(cases, outputs, strict=True)
                  if out != python_result(case)]
    assert not mismatches, mismatches[:3]
    errors = sum(not out.startswith("OK") for out in outputs)
    assert 0.2 * len(cases) < errors < 0.9 * len(cases), "the generator must give both valid and broken cases"
