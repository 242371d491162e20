"""Registers ``optimum-cli export mamba`` through optimum's plugin namespace.

optimum scans every ``optimum.commands.register`` module for ``REGISTER_COMMANDS``.
This module is installed under that namespace (pyproject's package-dir) and
stays light: the exporter is imported only when the command runs.
"""

from optimum.commands.base import BaseOptimumCLICommand, CommandInfo
from optimum.commands.export.base import ExportCommand


class MambaExportCommand(BaseOptimumCLICommand):
    COMMAND = CommandInfo(
        name="mamba",
        help="Export a Mamba checkpoint to ONNX with mamba-export (SelectiveScan custom op or standard ops).",
    )

    @staticmethod
    def parse_args(parser):
        from mamba_export.cli import export

        export.add_arguments(parser)

    def run(self):
        from mamba_export.cli.main import main

        argv = ["export", "--model", self.args.model, self.args.output, "--backend", self.args.backend,
                "--dtype", self.args.dtype, "--device", self.args.device, "--opset", str(self.args.opset),
                "--logits", self.args.logits]
        argv += [flag for flag, on in (("--no-check", self.args.no_check), ("--force", self.args.force),
                                       ("--quiet", self.args.quiet)) if on]
        raise SystemExit(main(argv))


REGISTER_COMMANDS = [(MambaExportCommand, ExportCommand)]
