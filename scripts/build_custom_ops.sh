#!/usr/bin/env bash
# Build libmamba_export_ops.so, the SelectiveScan custom-op library for ONNX Runtime.
#
# Usage: scripts/build_custom_ops.sh [--cuda] [--include-dir DIR] [--build-dir DIR]
#   --cuda            also build and register the CUDA kernels (needs nvcc, sm_90)
#   --include-dir DIR folder with onnxruntime_c_api.h; without it the headers are
#                     fetched into .ort_headers/ (scripts/fetch_ort_headers.sh) if missing
#   --build-dir DIR   CMake build folder (default build/custom_ops, or build/custom_ops_cuda with
#                     --cuda: where the runtime looks first for provider "cuda")
# The build is incremental. The last line printed is the path of the library.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir=""
include_dir=""
cuda="OFF"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --cuda) cuda="ON"; shift ;;
    --include-dir) include_dir="${2:?--include-dir needs a folder}"; shift 2 ;;
    --build-dir) build_dir="${2:?--build-dir needs a folder}"; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [[ -z "${build_dir}" ]]; then
  build_dir="${repo_root}/build/custom_ops"
  [[ "${cuda}" == "ON" ]] && build_dir="${repo_root}/build/custom_ops_cuda"
fi

command -v cmake >/dev/null || { echo "error: cmake not found; install CMake >= 3.18" >&2; exit 1; }
if [[ -z "${include_dir}" ]]; then
  include_dir="${repo_root}/.ort_headers"
  if [[ ! -f "${include_dir}/onnxruntime_c_api.h" ]]; then
    bash "${repo_root}/scripts/fetch_ort_headers.sh" "${include_dir}" >&2
  fi
fi

cmake_args=(-DCMAKE_BUILD_TYPE=Release -DONNXRUNTIME_INCLUDE_DIR="${include_dir}" -DMAMBA_EXPORT_WITH_CUDA="${cuda}")
if [[ "${cuda}" == "ON" ]] && ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  cmake_args+=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
fi

mkdir -p "${build_dir}"
log="${build_dir}/build.log"
cmake -S "${repo_root}/custom_ops" -B "${build_dir}" "${cmake_args[@]}" >"${log}" 2>&1 \
  || { cat "${log}" >&2; echo "error: configuring custom_ops failed (log above, also in ${log})" >&2; exit 1; }
cmake --build "${build_dir}" -j "$(nproc 2>/dev/null || echo 2)" >>"${log}" 2>&1 \
  || { tail -n 60 "${log}" >&2; echo "error: building custom_ops failed (log above, also in ${log})" >&2; exit 1; }
echo "${build_dir}/libmamba_export_ops.so"
