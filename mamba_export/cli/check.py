"""``mamba-export check``: the parity suite of an exported folder against the PyTorch model."""

from __future__ import annotations

HELP = "Check an exported folder against the PyTorch model (float64 oracle); non-zero exit on failure."


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
    from mamba_export.export.validate import validate

    try:
        report = validate(args.folder, reference=args.model, provider=args.provider, full=args.full)
        failed = False
    except ParityError as error:
        report, failed = error.report, True
        if report is None:
            raise
    print(report.format_table())
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report.to_dict(), handle, indent=2)
    return 1 if failed else 0
