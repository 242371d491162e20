"""The result of a parity run: one row per compared output, a table and a dict.

``ParityReport.format_table()`` is what ``mamba-export check`` prints;
``to_dict()`` is what it writes with ``--json`` and what an export can record in
``export_info.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mamba_export.parity.tolerances import FACTOR, FLOOR


@dataclass(frozen=True)
class CheckResult:
    """One compared output.

    error: the export's relative error against the float64 oracle (for ``greedy``: the
    number of mismatched tokens); baseline: the PyTorch model's error in the export
    dtype, measured the same way (None where it has no meaning); tolerance: the
    largest error allowed.
    """

    check: str
    output: str
    error: float
    baseline: float | None
    tolerance: float
    passed: bool
    detail: str = ""
    unit: str = "relative"  # or "tokens" (a count of mismatched tokens)

    def describe_failure(self) -> str:
        text = f"{self.check}: {self.output} has error {self.error:.3g} > tolerance {self.tolerance:.3g}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass
class ParityReport:
    """All results of one run of the suite on one export folder."""

    folder: str
    backend: str
    dtype: str
    provider: str
    reference: str
    results: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(result.passed for result in self.results)

    @property
    def failures(self) -> list:
        return [result for result in self.results if not result.passed]

    def add(self, results) -> None:
        self.results.extend(results)

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "folder": self.folder,
            "backend": self.backend,
            "dtype": self.dtype,
            "provider": self.provider,
            "reference": self.reference,
            "oracle": "float64 re-implementation over the reference weights",
            "rule": f"error <= {FACTOR:g} * baseline + {FLOOR[self.dtype]:.3g}",
            "results": [asdict(result) for result in self.results],
        }

    def format_table(self) -> str:
        header = ("check", "output", "error", "baseline", "tolerance", "result")
        rows = [header]
        for r in self.results:
            baseline = "-" if r.baseline is None else f"{r.baseline:.2e}"
            status = "ok" if r.passed else "FAIL"
            rows.append((r.check, r.output, _number(r.error, r.unit), baseline, _number(r.tolerance, r.unit),
                         status + (f"  {r.detail}" if r.detail else "")))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
        lines = [f"parity of {self.folder} ({self.backend}, {self.dtype}, {self.provider}) "
                 f"against {self.reference}; oracle: float64; rule: error <= {FACTOR:g} x baseline "
                 f"+ {FLOOR[self.dtype]:.1e}"]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append("  ".join(cells + [row[-1]]))
        verdict = "PASSED" if self.passed else f"FAILED ({len(self.failures)} of {len(self.results)} outputs)"
        lines.append(verdict)
        return "\n".join(lines)


def _number(value: float, unit: str) -> str:
    return f"{int(value)} tok" if unit == "tokens" else f"{value:.2e}"
