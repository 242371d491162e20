#!/usr/bin/env bash
# Run scripts/bench_decode_products.cu (our matrix-vector kernels as dependent launches against
# cuBLAS, decode's shapes, CUDA graphs) for mamba-130m and mamba-1.4b on a GPU machine.
# cuBLAS is the one torch loads (the same library ONNX Runtime's CUDA provider uses there).
#
# Usage: OUT=results/tmp bash scripts/bench_decode_products.sh
# Environment: BENCH_BINARY (default build/bench/bench_decode_products; built with nvcc if missing),
#              CUBLAS (a libcublas.so path; default: the one torch loads).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-${repo_root}/results/tmp/decode_products}"
mkdir -p "${out}"
binary="${BENCH_BINARY:-${repo_root}/build/bench/bench_decode_products}"
if [[ ! -x "${binary}" ]]; then
  mkdir -p "$(dirname "${binary}")"
  nvcc -O3 -std=c++17 -arch=sm_90 -cudart static -I"${repo_root}/custom_ops" -I"${repo_root}/custom_ops/include" \
    -o "${binary}" "${repo_root}/scripts/bench_decode_products.cu" "${repo_root}/custom_ops/linear/cuda.cu" \
    "${repo_root}/custom_ops/linear/cuda_tile.cu" \
    "${repo_root}/custom_ops/common/dependent_launch.cu" -ldl
fi
cublas="${CUBLAS:-$(python3 - <<'PY'
import torch
a = torch.ones(8, 8, device="cuda", dtype=torch.float16)
(a @ a).sum().item()
print(next(line.split()[-1] for line in open("/proc/self/maps") if "libcublas.so" in line))
PY
)}"
echo "cuBLAS: ${cublas}"
"${binary}" --cublas "${cublas}" --config mamba-130m --batches 1,2,4 --json "${out}/decode_products_130m.json"
"${binary}" --cublas "${cublas}" --config mamba-130m --batches 8,16,32 --json "${out}/decode_products_130m_b8_32.json"
"${binary}" --cublas "${cublas}" --config mamba-1.4b --batches 1,4 --json "${out}/decode_products_1p4b.json"
"${binary}" --cublas "${cublas}" --config mamba-1.4b --batches 32 --json "${out}/decode_products_1p4b_b32.json"
