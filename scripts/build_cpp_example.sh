#!/usr/bin/env bash
# Build the C++ embedding example (examples/cpp) into examples/cpp/build/.
#
# Usage: scripts/build_cpp_example.sh [extra CMake arguments]
#   e.g. scripts/build_cpp_example.sh -DONNXRUNTIME_ROOT=/opt/onnxruntime-linux-x64-gpu-1.22.0
# Without arguments it links the onnxruntime Python wheel's library and uses the headers
# in .ort_headers/, fetching them first when they are missing.
# Prints the path of the built program on its last line.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${MAMBA_CPP_EXAMPLE_BUILD_DIR:-${repo_root}/examples/cpp/build}"

given_headers=0
for arg in "$@"; do
  case "${arg}" in
    -DONNXRUNTIME_INCLUDE_DIR=* | -DONNXRUNTIME_ROOT=*) given_headers=1 ;;
  esac
done
if [[ ${given_headers} -eq 0 && ! -f "${repo_root}/.ort_headers/onnxruntime_cxx_api.h" ]]; then
  bash "${repo_root}/scripts/fetch_ort_headers.sh"
fi

mkdir -p "${build_dir}"
log="${build_dir}/build.log"
cmake -S "${repo_root}/examples/cpp" -B "${build_dir}" -DCMAKE_BUILD_TYPE=Release "$@" >"${log}" 2>&1 \
  || { cat "${log}" >&2; echo "error: configuring examples/cpp failed (log above)" >&2; exit 1; }
cmake --build "${build_dir}" -j "$(nproc 2>/dev/null || echo 2)" >>"${log}" 2>&1 \
  || { tail -n 60 "${log}" >&2; echo "error: building examples/cpp failed (log above)" >&2; exit 1; }
echo "${build_dir}/mamba_generate"
