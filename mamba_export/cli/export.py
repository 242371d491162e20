"""``mamba-export export``: export a checkpoint to an ONNX folder, then check it."""

from __future__ import annotations

from mamba_export.options import BACKENDS, DEFAULT_OPSET, DEVICES, DTYPES, LOGITS_MODES

HELP = "Export a Mamba checkpoint (hub id, local folder or preset:NAME) to an ONNX folder and check it."


def add_arguments(parser) -> None:
    parser.add_argument("--model", "-m", required=True,
                        help="hub id (state-spaces/mamba-130m-hf), local folder, or preset:mamba-130m "
                             "(published configuration, random weights)")
    parser.add_argument("output", metavar="OUTPUT_DIR", help="folder to create")
    parser.add_argument("--backend", choices=BACKENDS, default="custom",
                        help="custom: the SelectiveScan custom op; standard: standard ONNX operators only")
    parser.add_argument("--dtype", choices=DTYPES, default="fp32",
                        help="I/O and weight dtype (the scan state and residual stay float32)")
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="device to trace on")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset of the standard domain")
    parser.add_argument("--logits", choices=LOGITS_MODES, default="all",
                        help="last: output only the last position's logits (smaller, for generation)")
    parser.add_argument("--revision", default=None,
                        help="hub revision (branch, tag or commit) when --model is a hub id")
    parser.add_argument("--adapter", metavar="PATH", default=None,
                        help="a PEFT LoRA adapter folder for the model, merged into its weights before export")
    parser.add_argument("--no-check", action="store_true", help="skip the parity check after export")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT_DIR if it exists")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress display")


def run(args) -> int:
    from mamba_export.export.convert import export
    from mamba_export.options import ExportOptions

    options = ExportOptions(
        backend=args.backend, dtype=args.dtype, device=args.device, opset=args.opset,
        logits=args.logits, validate=not args.no_check, force=args.force, show_progress=not args.quiet,
        revision=args.revision, adapter=args.adapter,
    )
    path = export(args.model, args.output, options)
    print(f"exported to {path}")
    return 0
