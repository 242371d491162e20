#!/usr/bin/env bash
# Two builds of the op library side by side in one run on a CUDA machine: the scan kernel
# (scripts/bench_scan_loads.py), a token's time by part (scripts/profile_decode.py) and
# generate() end to end without transformers (scripts/bench_e2e.py --no-torch), each once
# per library, on the same fp16 mamba-130m export.
#
# Usage (after gpu_round.sh has unpacked onnxruntime-gpu into ORT_DIR):
#   OUT=... ORT_DIR=/tmp/ort bash scripts/compare_libraries.sh NAME=LIBRARY NAME=LIBRARY
# Environment: COMPARE_STEPS (default "loads decode e2e"), E2E_ARGS (extra bench_e2e arguments).
set -uo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"
out="${OUT:-${repo_root}/results/tmp/compare}"
mkdir -p "${out}"
export PYTHONPATH="${ORT_DIR:-/tmp/ort}:${repo_root}" PYTHONUNBUFFERED=1
steps=" ${COMPARE_STEPS:-loads decode e2e} "
folder=/tmp/compare/fp16
if [[ ! -d "${folder}" ]]; then
  MAMBA_EXPORT_OPS_LIBRARY="${2#*=}" python3 -m mamba_export export --model preset:mamba-130m "${folder}" \
    --device cuda --dtype fp16 --no-check --force --quiet || exit 1
fi
for pair in "$@"; do
  name="${pair%%=*}" library="$(realpath "${pair#*=}")"
  export MAMBA_EXPORT_OPS_LIBRARY="${library}"
  echo "== ${name}: ${library} ($(md5sum < "${library}" | cut -c1-12))"
  [[ "${steps}" == *" loads "* ]] && timeout 200 python3 scripts/bench_scan_loads.py --library "${library}" --iters 20 \
    --json "${out}/loads_${name}.json" 2>&1 | grep -v '^|---\|arn'
  [[ "${steps}" == *" decode "* ]] && timeout 150 python3 scripts/profile_decode.py "${folder}" --batches 1 32 128 \
    --json "${out}/decode_${name}.json"
  [[ "${steps}" == *" e2e "* ]] && timeout 300 python3 scripts/bench_e2e.py --provider cuda --dtype fp16 --backends custom \
    --no-torch --decode-tokens 64 --repeats 3 --workdir /tmp/compare/e2e_${name} ${E2E_ARGS:-} \
    --json "${out}/e2e_${name}.json" 2>&1 | tail -n 25
done
exit 0
