"""The result of a parity run: one row per compared output, a table and a dict.

``ParityReport.format_table()`` is what ``mamba-export check`` prints;
``to_dict()`` is what it writes with ``--json`` and what an export can record in
``export_info.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mamba_export.parity.tolerances import CEILING, FACTOR, FAILED, FLOOR, INCONCLUSIVE, PASSED

# Where to go when a check is inconclusive: a model whose PyTorch run in the export
# dtype is close enough to float64 for the rule to mean something.
REALISTIC_ROUTE = ("check an export of a model with trained weights instead (a local checkpoint folder, "
                   "or a hub checkpoint such as state-spaces/mamba-130m-hf), or export this one in fp32")


class ParityInconclusiveWarning(UserWarning):
    """An export was written, but its check could not tell whether it is right (see
    ``ParityReport.inconclusive_message``)."""


@dataclass(frozen=True)
class CheckResult:
    """One compared output.

    error: the export's relative error against the float64 oracle (for ``greedy``: the
    number of generated tokens that are not the oracle's choice); baseline: the PyTorch
    model's error in the export dtype, measured the same way (None where it has no
    meaning); tolerance: the largest error allowed; status: ``passed``, ``failed``, or
    ``inconclusive`` (PyTorch's own error is above the dtype's ceiling, so the
    comparison cannot fail: see ``tolerances.CEILING``).
    """

    check: str
    output: str
    error: float
    baseline: float | None
    tolerance: float
    status: str
    detail: str = ""
    unit: str = "relative"  # or "tokens" (a count of mismatched tokens)

    def __post_init__(self):
        if self.status not in (PASSED, FAILED, INCONCLUSIVE):
            raise ValueError(f"status must be {PASSED}, {FAILED} or {INCONCLUSIVE}, got {self.status!r}")

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def describe_failure(self) -> str:
        text = f"{self.check}: {self.output} has error {self.error:.3g} > tolerance {self.tolerance:.3g}"
        return f"{text} ({self.detail})" if self.detail else text

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


@dataclass
class ParityReport:
    """All results of one run of the suite on one export folder.

    Its status is ``failed`` when any output failed (or nothing was checked),
    ``inconclusive`` when none failed but some could not be judged, else ``passed``;
    only ``passed`` counts as a pass.
    """

    folder: str
    backend: str
    dtype: str
    provider: str
    reference: str
    results: list = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.results or self.failures:
            return FAILED
        return INCONCLUSIVE if self.inconclusive else PASSED

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def failures(self) -> list:
        return [result for result in self.results if result.status == FAILED]

    @property
    def inconclusive(self) -> list:
        return [result for result in self.results if result.status == INCONCLUSIVE]

    def add(self, results) -> None:
        self.results.extend(results)

    def inconclusive_message(self) -> str:
        """Why some outputs could not be judged, and what to do; empty when all could."""
        if not self.inconclusive:
            return ""
        worst = max((r.baseline for r in self.inconclusive if r.baseline is not None), default=float("nan"))
        return (f"{len(self.inconclusive)} of {len(self.results)} outputs are inconclusive: PyTorch itself, run "
                f"in {self.dtype}, is up to {worst:.2g} off float64 here, which puts the tolerance above the "
                f"{self.dtype} ceiling of {CEILING[self.dtype]:.2g}, where a broken graph would pass too. This is "
                f"typical of random weights in float16 or bfloat16, whose activations are far larger than a trained "
                f"model's. To verify the export, {REALISTIC_ROUTE}.")

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "status": self.status,
            "folder": self.folder,
            "backend": self.backend,
            "dtype": self.dtype,
            "provider": self.provider,
            "reference": self.reference,
            "oracle": "float64 re-implementation over the reference weights",
            "rule": f"error <= {FACTOR:g} * baseline + {FLOOR[self.dtype]:.3g}; inconclusive where that "
                    f"tolerance exceeds {CEILING[self.dtype]:.3g}",
            "ceiling": CEILING[self.dtype],
            "inconclusive_reason": self.inconclusive_message(),
            "results": [result.to_dict() for result in self.results],
        }

    def format_table(self) -> str:
        header = ("check", "output", "error", "baseline", "tolerance", "result")
        rows = [header]
        labels = {PASSED: "ok", FAILED: "FAIL", INCONCLUSIVE: "INCONCLUSIVE"}
        for r in self.results:
            baseline = "-" if r.baseline is None else _number(r.baseline, r.unit)
            rows.append((r.check, r.output, _number(r.error, r.unit), baseline, _number(r.tolerance, r.unit),
                         labels[r.status] + (f"  {r.detail}" if r.detail else "")))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
        lines = [f"parity of {self.folder} ({self.backend}, {self.dtype}, {self.provider}) "
                 f"against {self.reference}; oracle: float64; rule: error <= {FACTOR:g} x baseline "
                 f"+ {FLOOR[self.dtype]:.1e}, conclusive up to {CEILING[self.dtype]:.1e}"]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append("  ".join(cells + [row[-1]]))
        lines.append(self.verdict())
        return "\n".join(lines)

    def verdict(self) -> str:
        """The last line of the table: PASSED, FAILED (n of m outputs) or INCONCLUSIVE (...)."""
        if self.status == FAILED:
            return f"FAILED ({len(self.failures)} of {len(self.results)} outputs)"
        if self.status == INCONCLUSIVE:
            return f"INCONCLUSIVE: {self.inconclusive_message()}"
        return "PASSED"


def _number(value: float, unit: str) -> str:
    return f"{int(value)} tok" if unit == "tokens" else f"{value:.2e}"
