#!/usr/bin/env bash
# One-time set-up on a fresh machine: Python packages, the custom-op library,
# and the embedding examples' dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# torch first, pinned: the CPU build lies on this kind of machine's disk, while a
# bare `torch` requirement would pull a multi-GB CUDA build.
"$PYTHON" -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
# serve brings Ray Serve (about 240 MB, under 20 s from a warm cache) for `mamba-export serve`.
# dev brings the test tools and OpenVINO, one of the three runtimes the standard graph is tested on.
"$PYTHON" -m pip install -q -e ".[dev,optimum,lora,serve]"

bash scripts/build_custom_ops.sh
if [ -f examples/node/package-lock.json ] && command -v npm >/dev/null; then
    ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix examples/node --no-audit --no-fund --silent
fi
if [ -f scripts/build_cpp_example.sh ]; then
    bash scripts/build_cpp_example.sh
fi
echo "set-up done"
