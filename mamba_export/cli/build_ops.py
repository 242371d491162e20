"""``mamba-export build-ops``: build the SelectiveScan custom-op library with CMake."""

from __future__ import annotations

HELP = "Build the SelectiveScan custom-op library (libmamba_export_ops.so) for ONNX Runtime."


def add_arguments(parser) -> None:
    parser.add_argument("--cuda", action="store_true",
                        help="also build and register the CUDA kernels (needs nvcc; Hopper, sm_90)")
    parser.add_argument("--include-dir", metavar="DIR", default=None,
                        help="folder with the ONNX Runtime headers (onnxruntime_c_api.h); by default "
                             "they are fetched into .ort_headers/")
    parser.add_argument("--build-dir", metavar="DIR", default=None,
                        help="CMake build folder (default: build/custom_ops in the source tree)")


def run(args) -> int:
    from mamba_export.runtime.library import build_library

    path = build_library(cuda=args.cuda, include_dir=args.include_dir, build_dir=args.build_dir)
    print(path)
    return 0
