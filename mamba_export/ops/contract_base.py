"""What every op contract module (``selective_scan.py``, ``causal_conv.py``) is built from.

The custom-op domain, the description of one input or output, and the checks whose
wording is the same for every op: shapes spelled as tuples, missing and unknown
inputs, and dtypes against the contract's table. Each op's module keeps its own
semantics, shapes and wording of why a tensor has the dtype it must have.
"""

from __future__ import annotations

from dataclasses import dataclass

from mamba_export.errors import InputShapeError

DOMAIN = "mamba_export"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: str
    dtype: str  # "T" (the I/O dtype), "float32" or "int64"
    required: bool
    doc: str


def format_shape(shape) -> str:
    """A shape as Python writes a tuple: ``(2, 3)``, ``(4,)``, ``()``."""
    dims = tuple(int(s) for s in shape)
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


class ContractChecks:
    """The shared checks of one op, raising :class:`InputShapeError` prefixed with its op type."""

    def __init__(self, op_type: str, inputs: tuple[TensorSpec, ...]):
        self.op_type = op_type
        self.inputs = inputs
        self.input_names = tuple(spec.name for spec in inputs)
        self.required_inputs = tuple(spec.name for spec in inputs if spec.required)

    def fail(self, message: str) -> None:
        raise InputShapeError(f"{self.op_type}: {message}")

    def expect_shape(self, name, shape, expected, why) -> None:
        if tuple(int(s) for s in shape) != tuple(expected):
            self.fail(f"{name} is {format_shape(shape)}, expected {format_shape(expected)} {why}")

    def check_names(self, shapes: dict) -> None:
        """Every required input is given, and no input the contract does not have."""
        for name in self.required_inputs:
            if shapes.get(name) is None:
                self.fail(f"required input {name} is missing")
        unknown = set(shapes) - set(self.input_names)
        if unknown:
            self.fail(f"unknown inputs {sorted(unknown)}; the inputs are {list(self.input_names)}")

    def check_dtypes(self, dtypes: dict, io_input: str, io_dtypes: tuple[str, ...], why: dict) -> None:
        """The dtypes of the given inputs: ``io_input``'s is one of ``io_dtypes`` and every "T"
        input shares it; the others are their spec's dtype. ``why`` maps a spec dtype to the
        reason the message gives."""
        io_dtype = dtypes[io_input]
        if io_dtype not in io_dtypes:
            self.fail(f"{io_input} is {io_dtype}, expected one of {', '.join(io_dtypes)}")
        for spec in self.inputs:
            if spec.name not in dtypes:
                continue
            expected = io_dtype if spec.dtype == "T" else spec.dtype
            if dtypes[spec.name] != expected:
                self.fail(f"{spec.name} is {dtypes[spec.name]}, expected {expected} {why[spec.dtype]}")
