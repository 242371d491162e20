#!/usr/bin/env bash
# Build the speed baselines of docs/gpu.md (mamba-ssm's own generate(cg=True), and
# transformers' Mamba on mamba-ssm's and causal-conv1d's kernels) as binary wheels on a
# machine without a GPU, and stage them for a GPU machine that cannot reach a package
# index and accepts only small uploads per command. They are baselines to compare
# against, never dependencies of this package.
#
# What it builds: mamba-ssm 2.3.2.post1 and causal-conv1d 1.7.0 from their PyPI sdists,
# cp312 linux x86_64, against torch 2.11.0+cu130 (PyPI's torch 2.11.0 is the CUDA 13.0
# build; C++11 ABI), with nvcc 13.0 and for sm_90 (H200) only: each setup.py's gencode
# list is cut to `-gencode arch=compute_90,code=sm_90` and nvcc's --threads to 1
# (MAMBA_FORCE_BUILD=TRUE, CAUSAL_CONV1D_FORCE_BUILD=TRUE, TORCH_CUDA_ARCH_LIST=9.0,
# MAX_JOBS=2, under nice -n 10). Debug symbols are stripped from the extensions (the
# device code keeps -lineinfo). Then both wheels go into one tar.xz split into parts
# with a parts.sha256, as scripts/stage_ort_gpu.sh does for onnxruntime-gpu.
# On the GPU machine scripts/gpu_round.sh (ROUND_STEPS=baselines, BASELINE_STAGE=...)
# checks, unpacks and installs them into /tmp/baselines and runs scripts/bench_baselines.py.
#
# Here (2 CPU cores shared with other work, load average about 4; nvcc 13.0.88, gcc 12): causal-conv1d
# built in 5 minutes, mamba-ssm in 12 (its six backward-kernel files are most of it); the checks,
# repacking and xz another minute. Wheels: causal-conv1d 22 MB (its extension 39 MiB, 28 after the strip),
# mamba-ssm 37 MB (46 MiB, 38); the archive is 57 MiB, two 40 MiB parts.
#
# Usage: scripts/stage_baselines.sh [STAGE_DIR]   (default <repo>/.stage/baselines, git-ignored)
# Environment: BUILD_DIR (default /tmp/baseline_build: venv, sdists, build trees, wheels),
#              PYTHON312 (a Python 3.12 interpreter, default python3.12), PART_SIZE (default 40M),
#              MAX_JOBS (default 2), CUDA_HOME (default /usr/local/cuda), CUOBJDUMP (default: CUDA's, else
#              the one triton bundles, which is how it was checked here). A wheel already in BUILD_DIR/dist is
#              kept: delete it to build again.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stage="${1:-${repo_root}/.stage/baselines}"
build="${BUILD_DIR:-/tmp/baseline_build}"
python312="${PYTHON312:-python3.12}"
part_size="${PART_SIZE:-40M}"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export PATH="${CUDA_HOME}/bin:${PATH}"
torch_version=2.11.0
mamba_version=2.3.2.post1
conv_version=1.7.0

mkdir -p "${build}" "${stage}"
cd "${build}"

# 1. Python 3.12 with torch 2.11.0 and its CUDA libraries (torch does not import without them).
if [[ ! -x venv/bin/python ]]; then "${python312}" -m venv venv; fi
py="${build}/venv/bin/python"
"${py}" -c "import torch" 2>/dev/null || "${py}" -m pip install -q "torch==${torch_version}" "setuptools<82" \
  wheel ninja packaging numpy einops
"${py}" - <<EOF
import torch
assert torch.__version__.startswith("${torch_version}"), torch.__version__
assert torch.version.cuda.startswith("13."), f"torch {torch.__version__} is built for CUDA {torch.version.cuda}, not 13"
print("torch", torch.__version__, "CUDA", torch.version.cuda, "cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI)
EOF
nvcc --version | tail -n 2

# 2. The sdists (their metadata step imports torch, hence no build isolation).
"${py}" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d sdist \
  "mamba-ssm==${mamba_version}" "causal-conv1d==${conv_version}"

# 3. Unpack, cut the gencode list to sm_90 and nvcc's threads to 1, build a wheel each.
build_one() {
  local name="$1" version="$2" force_var="$3" src="src/$1-$2"
  rm -rf "${src}" && mkdir -p src && tar -xzf "sdist/${name}-${version}.tar.gz" -C src
  "${py}" - "${src}/setup.py" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
pair = re.compile(r'cc_flag\.append\("-gencode"\)\n(\s*)cc_flag\.append\("arch=compute_(\d+),code=sm_\d+"\)')
text = pair.sub(lambda m: m.group(0) if m.group(2) == "90" else f"pass\n{m.group(1)}pass", text)
text, threads = re.subn(r'\["--threads", "\d+"\]', '["--threads", "1"]', text)
kept = re.findall(r'arch=compute_\d+,code=sm_\d+', text)
assert kept == ["arch=compute_90,code=sm_90"] and threads == 1, (kept, threads)
open(path, "w").write(text)
print(f"{path}: gencode {kept}, nvcc --threads 1")
EOF
  if ls "${build}/dist/${name}-${version}-"*.whl >/dev/null 2>&1; then echo "${name}: already built"; return; fi
  local started=$(date +%s)
  (cd "${src}" && env "${force_var}=TRUE" TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS="${MAX_JOBS:-2}" \
    nice -n 10 "${py}" setup.py bdist_wheel -d "${build}/dist" > "${build}/${name}.log" 2>&1) \
    || { tail -n 40 "${build}/${name}.log"; echo "error: building ${name} failed (log: ${build}/${name}.log)" >&2; exit 1; }
  echo "${name}: built in $(( $(date +%s) - started )) s"
}
mkdir -p dist
build_one causal_conv1d "${conv_version}" CAUSAL_CONV1D_FORCE_BUILD
build_one mamba_ssm "${mamba_version}" MAMBA_FORCE_BUILD

# 4. Check each extension holds sm_90 code and the C++11 ABI, strip host debug symbols, repack.
cuobjdump="${CUOBJDUMP:-$(command -v cuobjdump || true)}"
[[ -n "${cuobjdump}" ]] || cuobjdump="$(ls "${build}"/venv/lib/python3.12/site-packages/triton/backends/nvidia/bin/cuobjdump)"
rm -rf unpacked final && mkdir -p unpacked final
for wheel in dist/*.whl; do
  "${py}" -m wheel unpack -d unpacked "${wheel}"
done
for so in unpacked/*/*.so; do
  echo "${so}: $(du -h "${so}" | cut -f1) before strip"
  "${cuobjdump}" --list-elf "${so}" | grep -o "sm_[0-9a-z]*" | sort | uniq -c | tee "${build}/arches.txt"
  grep -q " sm_90$" "${build}/arches.txt" || { echo "error: no sm_90 code in ${so}" >&2; exit 1; }
  ! grep -v " sm_90$" "${build}/arches.txt" || { echo "error: ${so} holds code for other GPUs" >&2; exit 1; }
  cxx11="$(nm -D --undefined-only "${so}" | grep -c "__cxx11" || true)"
  (( cxx11 > 0 )) || { echo "error: ${so} does not use the C++11 ABI" >&2; exit 1; }
  echo "${so}: ${cxx11} undefined symbols of the C++11 ABI"
  strip --strip-debug "${so}"
  echo "${so}: $(du -h "${so}" | cut -f1) after strip"
done
for tree in unpacked/*/; do "${py}" -m wheel pack -d final "${tree}"; done
ls -l final
# Python loads an extension with every symbol resolved, so importing both next to torch 2.11.0 checks the ABI.
rm -rf check && "${py}" -m pip install -q --no-index --no-deps --no-compile --target check final/*.whl
PYTHONPATH="${build}/check" "${py}" -c "import torch, causal_conv1d_cuda, selective_scan_cuda; \
print('extensions load against torch', torch.__version__, causal_conv1d_cuda.__file__, selective_scan_cuda.__file__)"

# 5. Stage: one tar.xz of both wheels in parts, with their sums.
rm -f "${stage}"/part[0-9]* "${stage}/parts.sha256" "${stage}/baselines.tar.xz"
tar -C final -cf - . | xz -T2 -9 > "${stage}/baselines.tar.xz"
echo "archive: $(du -h "${stage}/baselines.tar.xz" | cut -f1)"
(cd "${stage}" && split -b "${part_size}" -d baselines.tar.xz part && rm -f baselines.tar.xz)
(cd "${stage}" && sha256sum part[0-9]* > parts.sha256 && ls -l part[0-9]* && cat parts.sha256)
