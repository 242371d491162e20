"""Entry point of the ``mamba-export`` command.

Each command lives in its own module with ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them up. Command modules keep their
heavy imports inside ``run`` so ``mamba-export --help`` stays instant. A
``MambaExportError`` becomes one line on stderr and exit code 2; anything else
keeps its traceback, because it is a bug.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mamba_export import __version__
from mamba_export.errors import MambaExportError

# command name -> module under mamba_export.cli
COMMANDS = {
    "export": "export",
    "generate": "generate",
    "check": "check",
    "info": "info",
    "build-ops": "build_ops",
    "serve": "serve",
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends each option's default to its help, unless the help already says it or there is none
    (a None default means "decided elsewhere", which the help describes)."""

    def _get_help_string(self, action):
        if action.default is None or "(default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mamba-export",
        description="Export Mamba language models to ONNX and run them on ONNX Runtime.",
    )
    parser.add_argument("--version", action="version", version=f"mamba-export {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"mamba_export.cli.{module_name}")
        command_parser = sub.add_parser(
            name, help=module.HELP, description=module.HELP,
            formatter_class=_HelpFormatter,
        )
        module.add_arguments(command_parser)
        command_parser.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except MambaExportError as error:
        print(f"mamba-export {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mamba-export {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
