"""``mamba-export check``: the parity suite of an exported folder against the PyTorch model.

Exit codes: 0 passed; 1 failed; 2 could not run (e.g. the reference is missing);
3 inconclusive (no output failed, but some could not be judged: see the table's
last line). Only 0 is a pass.
"""

from __future__ import annotations

HELP = ("Check an exported folder against the PyTorch model (float64 oracle); exit 0 passed, 1 failed, "
        "3 inconclusive.")
EXIT_FAILED, EXIT_INCONCLUSIVE = 1, 3


def add_arguments(parser) -> None:
    parser.add_argument("folder", metavar="DIR", help="folder written by `mamba-export export`")
    parser.add_argument("--model", "-m", default=None,
                        help="reference checkpoint (hub id, folder or preset:NAME); default: the export's source")
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--full", action="store_true", help="the full suite (lengths up to 1024, 64-token greedy)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")


def run(args) -> int:
    import json

    from mamba_export.errors import ParityError
    from mamba_export.options import RuntimeOptions
    from mamba_export.parity.validate import validate

    try:
        report = validate(args.folder, reference=args.model, runtime=RuntimeOptions(provider=args.provider),
                          full=args.full)
        failed = False
    except ParityError as error:
        report, failed = error.report, True
        if report is None:
            raise
    print(report.format_table())
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report.to_dict(), handle, indent=2)
    if failed:
        return EXIT_FAILED
    return 0 if report.passed else EXIT_INCONCLUSIVE
