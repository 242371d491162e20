"""``mamba-export export``: export a checkpoint to an ONNX folder, then check it.

Exit codes: 0 written and passed (or written with ``--no-check``); 2 refused or
failed (a failed check writes nothing); 3 written but the check was inconclusive
(PyTorch itself too far from float64 in the export dtype, typical of random
weights in float16): the folder is kept, a warning says how to verify it, and
``export_info.json`` records ``parity.status = "inconclusive"``.
"""

from __future__ import annotations

import argparse

from mamba_export import options as opts
from mamba_export.dtypes import DEFAULT_DTYPE

HELP = "Export a Mamba checkpoint (hub id, local folder or preset:NAME) to an ONNX folder and check it."


def add_arguments(parser) -> None:
    parser.add_argument("--model", "-m", required=True,
                        help="hub id (state-spaces/mamba-130m-hf), local folder, or preset:mamba-130m "
                             "(published configuration, random weights)")
    parser.add_argument("output", metavar="OUTPUT_DIR", help="folder to create")
    parser.add_argument("--backend", choices=opts.BACKENDS, default="custom",
                        help="custom: the SelectiveScan custom op; standard: standard ONNX operators only")
    parser.add_argument("--dtype", choices=opts.DTYPES, default=DEFAULT_DTYPE,
                        help="I/O and weight dtype (the scan state and residual stay float32)")
    parser.add_argument("--device", choices=opts.DEVICES, default="cpu", help="device to trace on")
    parser.add_argument("--opset", type=int, default=opts.DEFAULT_OPSET, help="ONNX opset of the standard domain")
    parser.add_argument("--logits", choices=opts.LOGITS_MODES, default="all",
                        help="last: output only the last position's logits (smaller, for generation)")
    parser.add_argument("--quantize", choices=opts.QUANTIZE_METHODS, default=None,
                        help="int4: weight-only 4-bit MatMuls (com.microsoft.MatMulNBits; fp32 or fp16)")
    parser.add_argument("--block-size", type=int, choices=opts.QUANT_BLOCK_SIZES,
                        default=opts.DEFAULT_BLOCK_SIZE,
                        help="weights per 4-bit block along the input dimension (with --quantize)")
    parser.add_argument("--accuracy-level", type=int, choices=opts.ACCURACY_LEVELS,
                        default=opts.DEFAULT_ACCURACY_LEVEL,
                        help="MatMulNBits compute: 0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8 (fastest on CPU)")
    parser.add_argument("--revision", default=None,
                        help="hub revision (branch, tag or commit) when --model is a hub id")
    parser.add_argument("--adapter", metavar="PATH", default=None,
                        help="a PEFT LoRA adapter folder for the model, merged into its weights before export")
    parser.add_argument("--fuse-delta-proj", action="store_true",
                        help="custom backend: SelectiveScan computes dt_proj itself, one MatMul fewer per layer, "
                             "for CUDA exports (slower on the CPU; the standard backend ignores it)")
    parser.add_argument("--linear-op", action=argparse.BooleanOptionalAction, default=None,
                        help="custom backend: every MatMul with a constant weight becomes the Linear custom op "
                             "(decode's matrix-vector products by kernels of our own on CUDA instead of "
                             "cuBLAS); default: on with --device cuda (unless --quantize), off otherwise")
    parser.add_argument("--next-tokens", action=argparse.BooleanOptionalAction, default=None,
                        help="the graph also outputs next_tokens, the argmax of the last position's logits, "
                             "so that greedy decoding on CUDA picks tokens inside the decode step; default: on "
                             "with --device cuda for a model with a language-model head, off otherwise")
    parser.add_argument("--no-check", action="store_true", help="skip the parity check after export")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT_DIR if it exists")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress display")


EXIT_INCONCLUSIVE = 3


def run(args) -> int:
    import sys
    import warnings

    from mamba_export.export.convert import export
    from mamba_export.folder_format import read_info
    from mamba_export.options import ExportOptions
    from mamba_export.parity.report import ParityInconclusiveWarning

    options = ExportOptions(
        backend=args.backend, dtype=args.dtype, device=args.device, opset=args.opset,
        logits=args.logits, validate=not args.no_check, force=args.force, show_progress=not args.quiet,
        quantize=args.quantize, block_size=args.block_size, accuracy_level=args.accuracy_level,
        revision=args.revision, adapter=args.adapter, fuse_delta_proj=args.fuse_delta_proj,
        linear_op=args.linear_op, next_tokens=args.next_tokens,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParityInconclusiveWarning)  # said below, once
        path = export(args.model, args.output, options)
    print(f"exported to {path}")
    parity = read_info(path).get("parity") or {}
    if parity.get("status") == "inconclusive":
        print(f"warning: the parity check of {path} is INCONCLUSIVE, so this export is not verified. "
              f"{parity['inconclusive_reason']}", file=sys.stderr)
        return EXIT_INCONCLUSIVE
    return 0
