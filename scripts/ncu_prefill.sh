#!/usr/bin/env bash
# ncu's detailed sections for the kernels of our ops in one decode step and one prefill of
# 2048 tokens (mamba-130m, fp16, random weights), for finding what bounds each kernel.
# Usage (on a GPU machine, after gpu_round.sh has unpacked onnxruntime-gpu):
#   OUT=... ORT_DIR=/tmp/ort bash scripts/ncu_prefill.sh
set -uo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"
export PYTHONPATH="${ORT_DIR:-/tmp/ort}:${repo_root}" PYTHONUNBUFFERED=1
export MAMBA_EXPORT_OPS_LIBRARY="${MAMBA_EXPORT_OPS_LIBRARY:-${repo_root}/build/custom_ops_cuda/libmamba_export_ops.so}"
folder="${NCU_FOLDER:-/tmp/e2e/fp16}"
[[ -d "${folder}" ]] || python3 -m mamba_export export --model preset:mamba-130m "${folder}" --device cuda \
  --dtype fp16 --no-check --force --quiet || exit 1
ncu --profile-from-start off -k "regex:${NCU_KERNELS:-ScanKernel|CausalConvKernel}" --launch-skip "${NCU_SKIP:-48}" --launch-count "${NCU_COUNT:-2}" \
  --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
  --section MemoryWorkloadAnalysis --section SchedulerStats --section InstructionStats \
  python3 scripts/profile_decode.py "${folder}" --kernels --batches "${NCU_BATCH:-1}" --length "${NCU_LENGTH:-2048}" \
  2>&1 | tee "${OUT:-/tmp}/ncu_sections.txt" | grep -v '^==PROF==' | grep -E 'Kernel|Duration|Throughput|Occupancy|Warp Cycles|Stall|Registers|Block Size|Grid Size|Waves|Eligible|Issued|Active Warps|L1|L2|DRAM|Shared|Executed Instructions' | head -150
