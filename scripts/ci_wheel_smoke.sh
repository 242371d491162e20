#!/usr/bin/env bash
# Build the wheel, install it into a fresh virtual environment and run a custom-op export with it.
#
# Proves what a user of the wheel gets: the package and its op library come from the
# wheel alone (no source tree, no compiler, CMake or ONNX Runtime headers at install
# or run time), `mamba-export export` of a tiny local model passes its parity check
# with that library, and `mamba-export generate` runs the export.
#
# Usage: scripts/ci_wheel_smoke.sh        (PYTHON picks the interpreter, default python3;
#                                         TORCH_VERSION the CPU torch, as in scripts/setup.sh;
#                                         MAMBA_EXPORT_WITH_CUDA=1 builds and checks a CUDA wheel,
#                                         whose export still runs on the CPU)
# Building needs what scripts/build_custom_ops.sh needs; the fresh environment installs the
# wheel's dependencies from pip's index (and cache). A few minutes on a 2-core machine.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=${PYTHON:-python3}
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
step() { echo "== [${SECONDS}s] $*"; }

step "building the wheel"
"${PYTHON}" -m pip wheel "${repo_root}" --no-deps -q -w "${work}/dist"
wheel="$(ls "${work}"/dist/mamba_export-*.whl)"
case "$(basename "${wheel}")" in
  *-none-any.whl) echo "error: ${wheel} is a pure wheel; it must be platform-tagged" >&2; exit 1 ;;
esac
# (grep -c reads the whole listing: grep -q would stop early and break the pipe under pipefail)
"${PYTHON}" -m zipfile -l "${wheel}" | grep -c "mamba_export/_lib/libmamba_export_ops.so" >/dev/null \
  || { echo "error: ${wheel} does not carry mamba_export/_lib/libmamba_export_ops.so" >&2; exit 1; }

step "installing $(basename "${wheel}") into a fresh environment (no compiler on PATH)"
"${PYTHON}" -m venv "${work}/venv"
venv_bin="${work}/venv/bin"
# Nothing but the environment's own programs: an install or run that needs a compiler,
# CMake or the build script fails here instead of quietly using the machine's.
isolated=(env -u PYTHONPATH -u MAMBA_EXPORT_OPS_LIBRARY PATH="${venv_bin}")
cd "${work}"
# torch first, pinned as in scripts/setup.sh (a bare requirement would pull a CUDA build).
# --no-compile: byte-compiling all of torch up front is most of an install's time; Python
# compiles the modules it imports anyway.
"${isolated[@]}" pip install -q --no-compile "torch==${TORCH_VERSION:-2.13.0}"
"${isolated[@]}" pip install -q --no-compile "${wheel}"

step "checking that the package and its library come from the wheel"
site="$("${isolated[@]}" python -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')"
package="$("${isolated[@]}" python -c 'import mamba_export; print(mamba_export.__file__)')"
library="$("${isolated[@]}" mamba-export info --library)"
[[ "${package}" == "${site}/mamba_export/__init__.py" ]] \
  || { echo "error: mamba_export was imported from ${package}, not from the wheel in ${site}" >&2; exit 1; }
[[ "${library}" == "${site}/mamba_export/_lib/libmamba_export_ops.so" ]] \
  || { echo "error: the op library found is ${library}, not the wheel's" >&2; exit 1; }
echo "package ${package}"
echo "library ${library}"
# MAMBA_EXPORT_WITH_CUDA=1 (read by setup.py) builds the CUDA kernels into the wheel: check they are there.
cuda_kernels="$("${isolated[@]}" python -c 'from mamba_export.runtime.library import has_cuda_kernels as h; import sys; print(str(h(sys.argv[1])).lower())' "${library}")"
case "$(tr "[:upper:]" "[:lower:]" <<<"${MAMBA_EXPORT_WITH_CUDA:-0}" | tr -d "[:space:]")" in 1|on|true|yes) want=true ;; *) want=false ;; esac
[[ "${cuda_kernels}" == "${want}" ]] \
  || { echo "error: the wheel's library has CUDA kernels: ${cuda_kernels}, expected ${want}" >&2; exit 1; }
echo "CUDA kernels ${cuda_kernels}"

step "export (custom op, parity check on) and generate"
"${isolated[@]}" python - "${work}/model" <<'PY'
import sys

import torch
from transformers import MambaConfig, MambaForCausalLM

torch.manual_seed(0)
config = MambaConfig(vocab_size=64, hidden_size=16, state_size=8, num_hidden_layers=2, expand=2, conv_kernel=4,
                     pad_token_id=0, bos_token_id=0, eos_token_id=0)
MambaForCausalLM(config).eval().save_pretrained(sys.argv[1])
PY
"${isolated[@]}" mamba-export export --model "${work}/model" "${work}/export" --quiet
grep -q '"needs_custom_ops": true' "${work}/export/export_info.json" \
  || { echo "error: the export does not use the custom op" >&2; exit 1; }
tokens="$("${isolated[@]}" mamba-export generate "${work}/export" --ids 3,4,5 --max-new-tokens 6)"
echo "generated ${tokens}"
count="$(wc -w <<<"${tokens}")"
# The prompt, then 1 to 6 new ids (generation stops early at the end-of-sequence id).
[[ "${tokens}" == "3 4 5 "* && "${count}" -ge 4 && "${count}" -le 9 ]] \
  || { echo "error: expected the prompt 3 4 5 and 1 to 6 new ids, got: ${tokens}" >&2; exit 1; }
step "wheel smoke test passed"
