#!/usr/bin/env bash
# Prepare onnxruntime-gpu for a GPU machine that cannot reach a package index and
# accepts only small uploads per command.
#
# Downloads the onnxruntime-gpu wheel (CUDA 13 build) for Python 3.12 on x86-64,
# drops what a CUDA session does not need (the TensorRT provider and the
# Python tooling subpackages), packs the rest as a tar.xz and splits it into parts
# small enough for one upload each. On the GPU machine:
#     cat part* > ort.tar.xz && mkdir -p /tmp/ort && tar -xJf ort.tar.xz -C /tmp/ort
#     export PYTHONPATH=/tmp/ort:$PYTHONPATH
# (the archive holds the installed package folders, not the wheel, so no pip is needed).
#
# Usage: scripts/stage_ort_gpu.sh [STAGE_DIR]   (default <repo>/.stage, git-ignored)
# Environment: ORT_GPU_VERSION (default 1.31.1), PART_SIZE (default 60M).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stage="${1:-${repo_root}/.stage}"
version="${ORT_GPU_VERSION:-1.31.1}"
part_size="${PART_SIZE:-60M}"

mkdir -p "${stage}"
stage="$(cd "${stage}" && pwd)"  # absolute: the archive is written from inside the tree
wheel_dir="${stage}/wheel"
mkdir -p "${wheel_dir}"
if ! ls "${wheel_dir}"/onnxruntime_gpu-"${version}"-*.whl >/dev/null 2>&1; then
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    -d "${wheel_dir}" "onnxruntime-gpu==${version}"
fi
wheel="$(ls "${wheel_dir}"/onnxruntime_gpu-"${version}"-*.whl | head -n 1)"
echo "wheel: ${wheel} ($(du -h "${wheel}" | cut -f1))"

tree="${stage}/tree"
rm -rf "${tree}" "${stage}"/part* "${stage}/ort.tar.xz"
mkdir -p "${tree}"
python3 -m zipfile -e "${wheel}" "${tree}"
# A Python CUDA session loads the Python binding (which holds the runtime
# itself), the shared provider bridge and the CUDA provider. The TensorRT
# provider, the C-API library (for C/C++ programs) and the model-conversion
# tooling are never loaded.
rm -f "${tree}"/onnxruntime/capi/libonnxruntime_providers_tensorrt.so \
  "${tree}"/onnxruntime/capi/libonnxruntime.so.*
rm -rf "${tree}"/onnxruntime/transformers "${tree}"/onnxruntime/quantization \
  "${tree}"/onnxruntime/tools "${tree}"/onnxruntime/datasets
echo "${version}" > "${tree}/ORT_GPU_VERSION"
du -sh "${tree}"/onnxruntime/capi/*.so* | sort -h | tail -n 5

(cd "${tree}" && tar -cf - . | xz -T0 -9e > "${stage}/ort.tar.xz")
echo "archive: $(du -h "${stage}/ort.tar.xz" | cut -f1)"
(cd "${stage}" && split -b "${part_size}" -d ort.tar.xz part && rm -f ort.tar.xz)
(cd "${stage}" && sha256sum part[0-9]* > parts.sha256 && ls -l part[0-9]*)
