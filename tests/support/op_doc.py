"""Checks that an op's doc (docs/<op>_op.md) states what its contract module (mamba_export/ops/<op>.py) says.

Every op doc has the same header table and the same Inputs and Outputs tables, so the tests of each op doc
read and compare them through these helpers; what differs per op (attributes, quoted messages) stays in
that op's test.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

DOCS = Path(__file__).resolve().parents[2] / "docs"


def table(doc: Path, section: str) -> list[list[str]]:
    """The rows of the first table under '## section' (up to the next heading), cells stripped of backticks."""
    text = doc.read_text().split(f"## {section}\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in text.splitlines() if line.startswith("|")][2:]
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows]


def assert_header_values(doc: Path, contract: ModuleType) -> None:
    text = doc.read_text()
    assert f"| Domain | `{contract.DOMAIN}` |" in text
    assert f"| Op type | `{contract.OP_TYPE}` |" in text
    assert f"| Version | {contract.OP_VERSION} " in text


def assert_inputs_table(doc: Path, contract: ModuleType) -> None:
    rows = table(doc, "Inputs")
    assert [(int(r[0]), r[1], r[2], r[3], r[4] == "yes", r[5]) for r in rows] == [
        (i, s.name, s.shape, s.dtype, s.required, s.doc) for i, s in enumerate(contract.INPUTS)]


def assert_outputs_table(doc: Path, contract: ModuleType) -> None:
    rows = table(doc, "Outputs")
    assert [(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows] == [
        (i, s.name, s.shape, s.dtype, s.doc) for i, s in enumerate(contract.OUTPUTS)]
