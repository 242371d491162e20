#!/usr/bin/env bash
# One GPU round: check the machine and ONNX Runtime's CUDA provider, run the GPU
# tests, a memory check of the CUDA op tests, and the op benchmark. Every step runs
# even if an earlier one failed; the exit code says whether all passed.
#
# Usage (from the repository root, on a machine with a CUDA GPU):
#   OUT=results/tmp/gpu bash scripts/gpu_round.sh
# Environment:
#   OUT                        folder for the logs and JSON (flat; keep a round's steps to 8 files, what a device call returns)
#   ORT_STAGE                  folder with part* of scripts/stage_ort_gpu.sh: assembled,
#                              checked and unpacked into ORT_DIR first (optional)
#   ORT_DIR                    folder holding an unpacked onnxruntime-gpu (put first on
#                              PYTHONPATH); without it the installed onnxruntime is used
#   MAMBA_EXPORT_OPS_LIBRARY   the CUDA build of libmamba_export_ops.so
#                              (default build/custom_ops_cuda/libmamba_export_ops.so;
#                              built here if missing)
#   MAMBA_EXPORT_COMMIT        the commit under test, recorded in round.json
#   ROUND_BUDGET_S             seconds the whole round may take (default 540)
#   SKIP_OTHER_GPU_TESTS=1     run only the op's GPU tests (when device time is short)
#   ROUND_STEPS                any of: "op" (CUDA op tests, memcheck, every other GPU test; "op_tests"
#                              or "memcheck" for one of the first two),
#                              "bench" (op benchmark), "e2e" (mamba-130m exported on CUDA in fp32/fp16/bf16,
#                              node counts, parity on the CUDA provider, greedy against transformers),
#                              "e2e_bench" (scripts/bench_e2e.py through generate(), fp16, against
#                              transformers eager), "e2e_big" (bf16 and the 1.4b config; "e2e_bf16" or
#                              "e2e_1p4b" for one of them), "products" (scripts/bench_decode_products.sh:
#                              decode's products by our kernels against cuBLAS, no ONNX Runtime), "gpu_tests"
#                              (GPU tests of the half-precision and int4 exports, the trained model and
#                              the CUDA runtime), "quality" (the bf16 quality row), "loads" (the chunked
#                              scan's strided against staged loads), "serve" (the scheduler's load test
#                              in-process on CUDA, random and trained weights), "profile" (a token's time
#                              by part, and ncu's kernels of one decode step and one prefill), "timeline"
#                              (decode steps' graph replays traced as they run: kernel time and gaps;
#                              TIMELINE_BATCHES, default "1 32 128"), "first_calls"
#                              (a first call at new prompt lengths against the second, per node, lazy and
#                              eager kernel loading), "fused_delta" (generate() on the plain against the
#                              --fuse-delta-proj export), "decode_ab" (decode steps of the library under
#                              test against BASE_LIBRARY and AB_SETTINGS, alternating), "baselines"
#                              (mamba-ssm's generate() with and without CUDA graphs and transformers on
#                              mamba-ssm's kernels, scripts/bench_baselines.py; alone, it needs neither
#                              onnxruntime nor the op library); default "op e2e".
#   BASE_LIBRARY               another build of the op library for "decode_ab" (optional)
#   AB_SETTINGS                for "decode_ab": space-separated NAME=VAR=VALUE, each timed as a run of the
#                              library under test with VAR=VALUE set, e.g. "pdl_on=MAMBA_EXPORT_DEPENDENT_LAUNCH=1
#                              channel=MAMBA_EXPORT_DECODE_SCAN=channel"
#   AB_LIBRARIES               for "decode_ab": space-separated NAME=PATH, more builds of the op library timed
#                              beside the one under test (each run named NAME)
#   AB_VARIANTS                the exports "decode_ab" times: "plain" (default: the default CUDA export), "fused"
#                              (--fuse-delta-proj), "linear" (--linear-op), "tokens" (--next-tokens),
#                              "head" (--no-next-tokens: tokens chosen by the token head's session) and/or
#                              "onnx_tokens" (the default export, next_tokens rewritten to ONNX's nodes)
#   AB_MODEL, AB_BATCHES       for "decode_ab": the model exported (default preset:mamba-130m) and the batch
#                              sizes timed (default "1 32 128")
#   OP_TESTS_K                 a pytest -k selection of the CUDA op tests; SKIP_MEMCHECK=1 skips memcheck
#   OP_TEST_FILES              the CUDA op test files (default: all ten); OP_TEST_WORKERS pytest-xdist
#                              workers (default: the cores, at most 16). The whole op set took about 9
#                              minutes on 16 workers on the H200 machine, past one device call: split it with
#                              ROUND_STEPS="op_tests" and OP_TEST_FILES, then ROUND_STEPS="memcheck"
#   E2E_DTYPES                 the dtypes of the e2e group (default "fp32 fp16 bf16")
#   E2E_FLAGS                  extra scripts/bench_e2e.py flags for "e2e_bench" and "e2e_big" (e.g. --linear-op)
#   BASELINE_STAGE             folder with part* and parts.sha256 of scripts/stage_baselines.sh: checked,
#                              unpacked and its wheels installed into BASELINE_DIR (group "baselines")
#   BASELINE_DIR               the baselines' install folder, put on PYTHONPATH (default /tmp/baselines;
#                              a warm machine keeps it, so BASELINE_STAGE may then be left out)
#   ROUND_PACK=1               pack every file of OUT but round.json into OUT/round_files.tgz at the end
#                              (the device tool brings back at most 8 files a call)
#                              Each group fits one 10-minute device command; a warm machine keeps /tmp.
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"
out="${OUT:-${repo_root}/results/tmp/gpu_round}"
mkdir -p "${out}"
budget="${ROUND_BUDGET_S:-540}"
started=$(date +%s)
failures=()
export PYTHONUNBUFFERED=1

remaining() { echo $(( budget - ($(date +%s) - started) )); }
# step NAME CAP_SECONDS COMMAND...: run with a time cap, record a failure.
step() {
  local name="$1" cap="$2"; shift 2
  local left; left=$(remaining)
  (( cap > left )) && cap=${left}
  if (( cap < 20 )); then echo "== ${name}: skipped, round budget spent"; failures+=("${name}:skipped"); return; fi
  echo "== ${name} (at most ${cap}s)"
  timeout --kill-after=10 "${cap}" "$@"
  local rc=$?
  if (( rc != 0 )); then failures+=("${name}:rc=${rc}"); fi
}
fail_now() { echo "error: $*" >&2; exit 1; }
# The fp16 mamba-130m export that the profile, timeline and first-call steps share, made once a machine.
export_fp16_once() {
  [[ -d /tmp/e2e/fp16 ]] || step export_fp16 150 bash -o pipefail -c "python3 -m mamba_export export \
    --model preset:mamba-130m /tmp/e2e/fp16 --device cuda --dtype fp16 --no-check --force 2>&1 | tail -n 3"
}

# 1. The machine.
nvidia-smi > "${out}/nvidia_smi.txt" 2>&1 || fail_now "nvidia-smi failed: $(cat "${out}/nvidia_smi.txt")"
head -n 12 "${out}/nvidia_smi.txt"

steps=" ${ROUND_STEPS:-op e2e} "
# The baselines and the products benchmark use neither onnxruntime nor this package.
without_ort=1
for name in ${steps}; do [[ "${name}" == baselines || "${name}" == products ]] || without_ort=0; done

# 2. onnxruntime-gpu.
if (( without_ort )); then
  echo "== baselines or products only: onnxruntime and the op library are not checked"
else
if [[ -n "${ORT_STAGE:-}" ]]; then
  ORT_DIR="${ORT_DIR:-/tmp/ort}"
  (cd "${ORT_STAGE}" && sha256sum -c parts.sha256) || fail_now "staged onnxruntime parts are incomplete or corrupt"
  mkdir -p "${ORT_DIR}"
  cat "${ORT_STAGE}"/part[0-9]* | xz -d -T0 | tar -xf - -C "${ORT_DIR}" || fail_now "unpacking onnxruntime-gpu failed"
fi
if [[ -n "${ORT_DIR:-}" ]]; then export PYTHONPATH="${ORT_DIR}${PYTHONPATH:+:${PYTHONPATH}}"; fi
python3 - <<'EOF' || fail_now "onnxruntime cannot run on the CUDA provider (see above)"
import onnxruntime as ort
from onnx import TensorProto, helper

if hasattr(ort, "preload_dlls"):
    ort.preload_dlls()
print("onnxruntime", ort.__version__, ort.__file__, ort.get_available_providers())
assert "CUDAExecutionProvider" in ort.get_available_providers(), "no CUDAExecutionProvider in this build"
graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 10
session = ort.InferenceSession(model.SerializeToString(), providers=["CUDAExecutionProvider"])
assert "CUDAExecutionProvider" in session.get_providers(), f"CUDA provider did not load: {session.get_providers()}"
print("CUDA provider loads:", session.get_providers())
EOF

# 3. The package and the CUDA op library.
python3 -c "import mamba_export.kernels" 2>/dev/null \
  || python3 -m pip install -q --no-deps --no-build-isolation -e . > "${out}/setup.log" 2>&1 \
  || fail_now "pip install -e . failed: $(tail -n 20 "${out}/setup.log")"
export MAMBA_EXPORT_OPS_LIBRARY="${MAMBA_EXPORT_OPS_LIBRARY:-${repo_root}/build/custom_ops_cuda/libmamba_export_ops.so}"
if [[ ! -f "${MAMBA_EXPORT_OPS_LIBRARY}" ]]; then
  echo "== building the CUDA op library here"
  # CUDA is enabled at the project's top level (CMake ignores enable_language()
  # inside a function on some versions), through the project-include hook.
  echo 'enable_language(CUDA)' > /tmp/enable_cuda.cmake
  build_dir="$(dirname "${MAMBA_EXPORT_OPS_LIBRARY}")"
  { cmake -S custom_ops -B "${build_dir}" -DCMAKE_BUILD_TYPE=Release -DMAMBA_EXPORT_WITH_CUDA=ON \
      -DONNXRUNTIME_INCLUDE_DIR="${repo_root}/.ort_headers" -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DCMAKE_PROJECT_mamba_export_ops_INCLUDE=/tmp/enable_cuda.cmake && cmake --build "${build_dir}" -j 8; } \
    > "${out}/setup.log" 2>&1 || fail_now "building the op library failed: $(tail -n 30 "${out}/setup.log")"
fi
fi

parallel=""
workers="${OP_TEST_WORKERS:-$(( $(nproc) < 16 ? $(nproc) : 16 ))}"
python3 -c "import xdist" 2>/dev/null && parallel="-n ${workers}"
op_tests="${OP_TEST_FILES:-tests/custom_ops/test_selective_scan_cuda.py tests/custom_ops/test_causal_conv_cuda.py \
tests/custom_ops/test_packed_inputs_cuda.py tests/custom_ops/test_selective_scan_cuda_staged.py \
tests/custom_ops/test_residual_norm_cuda.py tests/custom_ops/test_projected_delta_cuda.py \
tests/custom_ops/test_selective_scan_cuda_channel.py tests/custom_ops/test_linear_cuda.py \
tests/custom_ops/test_index_width_cuda.py tests/custom_ops/test_last_argmax_cuda.py}"
if [[ "${steps}" == *" op "* || "${steps}" == *" op_tests "* ]]; then
# 4. Tests: the CUDA ops first, then every other GPU test (OP_TEST_WORKERS where pytest-xdist is installed).
step pytest_cuda_op 480 bash -o pipefail -c "python3 -m pytest -m gpu ${op_tests} -k '${OP_TESTS_K:-not no_such_test}' \
  -q -p no:cacheprovider ${parallel} --durations=10 2>&1 | tee '${out}/pytest_cuda_op.log'"
fi
if [[ "${steps}" == *" op "* || "${steps}" == *" memcheck "* ]]; then
# 5. Memory check of a few op tests; no caching allocator, so each tensor is its own allocation.
# (Kept short: under memcheck each test runs about 50x slower; on 2026-12-02 a similar selection (the scan, conv,
# index-width and projected-delta files) got through 50 tests in 280 s.)
memcheck_selection="chunked_17_unaligned and softplus and bfloat16 or decode_batch_64 and softplus and float32 \
or wide_unaligned_77 and softplus and float16 or short_groups and softplus and float32 \
or chunk_31 and silu and float16 or word_chunk_17 and silu and float16 or scalar_below_chunk_15 and none and float32 \
or length_0 or bad_input or decode_state_9 and bfloat16 and True \
or short_3_state_12_odd_dim and float16 and False \
or 32_and_64 and decode_130m_b32 and float16 and (True or silu) or 32_and_64 and groups and float32 and True \
or test_matches_reference and initializer and dependent_launch and float16 and (decode_b17_dt_proj \
or inner_8_outer_33 or head_130m_b8 or odd_inner_13 or x_proj_1.4b_b4 or split_uneven) \
or test_pieces_and_single_entries_meet_at_the_right_index and float16 \
or test_a_tie_across_warps or test_matches_reference and decode_b200 and float32"
[[ "${SKIP_MEMCHECK:-0}" == 1 ]] || step memcheck 400 bash -o pipefail -c "PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck \
  --target-processes all --print-limit 20 --error-exitcode 3 python3 -m pytest -m gpu -q -p no:cacheprovider \
  ${op_tests} -k '${memcheck_selection}' 2>&1 | tee '${out}/memcheck.log'"
[[ "${SKIP_OTHER_GPU_TESTS:-0}" == 1 || "${steps}" != *" op "* ]] || step pytest_gpu_other 240 bash -o pipefail -c "python3 -m pytest -m gpu tests -q -s -p no:cacheprovider \
  $(for t in ${op_tests}; do printf -- '--ignore=%s ' "$t"; done) 2>&1 | tee '${out}/pytest_gpu_other.log'"
fi

# 5b. Precision on CUDA: the bfloat16 and int4 export tests, and the bfloat16 row of the quality
#     table on the trained model (needs build/fortunes from scripts/prepare_fortunes.py).
if [[ "${steps}" == *" gpu_tests "* ]]; then
step pytest_half_precision 480 bash -o pipefail -c "python3 -m pytest -m gpu tests/export/test_half_precision.py \
  tests/export/test_fuse_delta_proj.py tests/models/test_fortunes_mamba.py tests/runtime/test_cuda_runtime.py tests/serve/test_scheduler_cuda.py \
  -q -p no:cacheprovider -rs ${parallel} 2>&1 | tee '${out}/pytest_half_precision.log'"
fi
if [[ "${steps}" == *" quality "* ]]; then
step quality_bf16 240 bash -o pipefail -c "python3 scripts/bench_quality.py --model models/fortunes-mamba \
  --text build/fortunes/test.jsonl --rows pytorch-fp32 custom-bf16 --workdir /tmp/quality \
  --json '${out}/bench_quality_bf16_cuda.json' 2>&1 | tee '${out}/bench_quality_bf16_cuda.log'"
fi

# 5c. Serving: the continuous-batching scheduler in-process on the CUDA provider (no Ray here), 128
#     concurrent streams against generate() at batch 128 in the same run.
if [[ "${steps}" == *" serve "* ]]; then
step export_serve 150 bash -o pipefail -c "python3 -m mamba_export export --model preset:mamba-130m /tmp/serve130 \
  --logits last --no-check --quiet --force 2>&1 | tail -n 5"
step load_test_cuda 200 bash -o pipefail -c "python3 scripts/load_test.py /tmp/serve130 --mode inprocess \
  --provider cuda --clients 128 --requests 256 --max-tokens 64 --prompt-tokens 16 --time-limit 40 \
  --compare-generate --json '${out}/load_test_inprocess_cuda.json' 2>&1"
# The trained model (models/fortunes-mamba): its logits have real margins, unlike random weights.
step export_serve_trained 90 bash -o pipefail -c "python3 -m mamba_export export --model models/fortunes-mamba \
  /tmp/serve_trained --logits last --no-check --quiet --force 2>&1 | tail -n 5"
step load_test_cuda_trained 150 bash -o pipefail -c "python3 scripts/load_test.py /tmp/serve_trained \
  --mode inprocess --provider cuda --clients 128 --requests 256 --max-tokens 64 --prompt-tokens 16 \
  --time-limit 40 --json '${out}/load_test_inprocess_cuda_trained.json' 2>&1"
fi

# 5d. Where a generated token's time goes (scripts/profile_decode.py), and the kernels of one
#     decode step and one prefill of 2048 tokens under ncu (fp16, mamba-130m, random weights).
if [[ "${steps}" == *" profile "* ]]; then
export_fp16_once
step profile_decode 150 bash -o pipefail -c "python3 scripts/profile_decode.py /tmp/e2e/fp16 --batches 1 32 128 \
  --json '${out}/profile_decode.json' 2>&1"
for batch in ${PROFILE_KERNEL_BATCHES:-1}; do
  step "ncu_kernels_b${batch}" 200 bash -o pipefail -c "ncu --profile-from-start off --metrics gpu__time_duration.sum \
    --csv --page raw python3 scripts/profile_decode.py /tmp/e2e/fp16 --kernels --batches ${batch} \
    > '${out}/ncu_kernels_b${batch}.csv'"
done
fi

# 5d*. Decode steps' graph replays traced as they run (scripts/profile_decode.py --timeline): kernel time
#      and the gaps between kernels, per batch size.
if [[ "${steps}" == *" timeline "* ]]; then
export_fp16_once
step timeline 200 bash -o pipefail -c "python3 scripts/profile_decode.py /tmp/e2e/fp16 --timeline \
  --batches ${TIMELINE_BATCHES:-1 32 128} --json '${out}/timeline.json' 2>&1"
fi

# 5d'. The projected delta (--fuse-delta-proj): generate() on the plain and the fused fp16 export in one
#      run (its CUDA op tests are in "op", its export tests in "gpu_tests").
if [[ "${steps}" == *" fused_delta "* ]]; then
for variant in plain fused; do
  flag=""; [[ "${variant}" == fused ]] && flag="--fuse-delta-proj"
  step "bench_e2e_${variant}" 240 bash -o pipefail -c "python3 scripts/bench_e2e.py --provider cuda --dtype fp16 \
    --backends custom --no-torch --decode-tokens 64 --repeats 3 --workdir /tmp/fused_delta ${flag} \
    --json '${out}/bench_e2e_${variant}.json' 2>&1 | tail -n 25"
done
fi

# 5d''. Decode steps side by side (scripts/profile_decode.py: graph replay, token head, generate() per
#       token), two passes over the runs so that order effects show: for each export of AB_VARIANTS
#       ("plain", "fused": the --fuse-delta-proj export, "linear": the --linear-op export, "onnx_tokens": the default
#       export with next_tokens from ONNX's Gather/Cast/ArgMax instead of LastArgMax; default "plain"), the library under
#       test as it is ("new"), BASE_LIBRARY ("base", another build, optional) and every AB_SETTINGS
#       entry NAME=VAR=VALUE (the library under test with one environment variable set).
if [[ "${steps}" == *" decode_ab "* ]]; then
settings="" variants="${AB_VARIANTS:-plain}" ab_model="${AB_MODEL:-preset:mamba-130m}"
ab_root="/tmp/decode_ab/$(echo "${ab_model}" | tr -c 'A-Za-z0-9.\n-' _)"
[[ -n "${BASE_LIBRARY:-}" ]] && settings="base"
for entry in ${AB_SETTINGS:-}; do settings="${settings} ${entry}"; done
for entry in ${AB_LIBRARIES:-}; do settings="${settings} library:${entry}"; done
for variant in ${variants}; do
  flag=""; [[ "${variant}" == fused ]] && flag="--fuse-delta-proj"; [[ "${variant}" == linear ]] && flag="--linear-op"
  [[ "${variant}" == tokens ]] && flag="--next-tokens"; [[ "${variant}" == head ]] && flag="--no-next-tokens"
  # "onnx_tokens": the default export with its next_tokens rewritten to ONNX's nodes (scripts/onnx_next_tokens.py).
  rewrite="true"; [[ "${variant}" == onnx_tokens ]] && rewrite="python3 scripts/onnx_next_tokens.py ${ab_root}/${variant}"
  [[ -d ${ab_root}/${variant} ]] || step "export_${variant}" 200 bash -o pipefail -c "python3 -m mamba_export export \
    --model '${ab_model}' ${ab_root}/${variant} --device cuda --dtype fp16 --no-check --force --quiet ${flag} \
    && ${rewrite}"
done
index=0
rm -rf /tmp/decode_ab/json && mkdir -p /tmp/decode_ab/json
for pass in 1 2; do
  for variant in ${variants}; do
    for setting in ${settings} new; do
      index=$((index + 1)) name="${setting%%=*}" library="${MAMBA_EXPORT_OPS_LIBRARY}" assignment=""
      [[ "${setting}" == base ]] && library="$(realpath "${BASE_LIBRARY}")"
      if [[ "${setting}" == library:* ]]; then
        name="${setting#library:}" name="${name%%=*}" library="$(realpath "${setting#*=}")"
      elif [[ "${setting}" == *=* ]]; then
        assignment="${setting#*=}"
      fi
      step "decode_${index}_${variant}_${name}" 90 bash -o pipefail -c "${assignment} \
        MAMBA_EXPORT_OPS_LIBRARY='${library}' python3 scripts/profile_decode.py ${ab_root}/${variant} \
        --batches ${AB_BATCHES:-1 32 128} --json /tmp/decode_ab/json/$(printf %02d ${index})_${variant}_${name}.json 2>&1 | tail -n 6"
    done
  done
done
# One file for all runs (the round's folder holds few files): {"01_plain_base": {...}, ...}.
python3 - "${out}/decode_ab.json" /tmp/decode_ab/json <<'EOF_AB'
import json, sys
from pathlib import Path
runs = {path.stem: json.loads(path.read_text()) for path in sorted(Path(sys.argv[2]).glob("*.json"))}
Path(sys.argv[1]).write_text(json.dumps(runs, indent=1) + "\n")
print("decode step ms (batch 1 / 32 / 128):")
for name, run in runs.items():
    print(f"  {name}: " + " / ".join(f"{row['decode_step_ms']:.3f}" for row in run["rows"]))
EOF_AB
fi

# 5e. Where a first call at a new prompt length spends its extra time (ONNX Runtime's profiler,
#     first against second call per node), with CUDA's lazy kernel loading and with eager loading.
if [[ "${steps}" == *" first_calls "* ]]; then
export_fp16_once
step first_calls_lazy 120 bash -o pipefail -c "python3 scripts/profile_gpu.py /tmp/e2e/fp16 \
  --first-calls 17 33 65 129 1025 --json '${out}/first_calls_lazy.json' 2>&1 | tee '${out}/first_calls.log'"
step first_calls_eager 120 bash -o pipefail -c "CUDA_MODULE_LOADING=EAGER python3 scripts/profile_gpu.py \
  /tmp/e2e/fp16 --first-calls 17 33 65 129 1025 --json '${out}/first_calls_eager.json' 2>&1 \
  | tee -a '${out}/first_calls.log'"
fi

# 6. The op benchmarks.
if [[ "${steps}" == *" bench "* ]]; then
step bench 200 bash -o pipefail -c "python3 scripts/bench_op_gpu.py --library '${MAMBA_EXPORT_OPS_LIBRARY}' \
  --iters 20 --json '${out}/bench_op_gpu.json' 2>&1 | tee '${out}/bench_op_gpu.log'"
fi
if [[ "${steps}" == *" loads "* ]]; then
step bench_scan_loads 150 bash -o pipefail -c "python3 scripts/bench_scan_loads.py \
  --library '${MAMBA_EXPORT_OPS_LIBRARY}' --json '${out}/bench_scan_loads.json' 2>&1 | tee '${out}/bench_scan_loads.log'"
fi

# 7. End to end: mamba-130m (random weights) exported on the GPU, checked and timed there
#    through the public API (export, check, generate).
e2e=/tmp/e2e
log="${out}/e2e.log"
if [[ "${steps}" == *" e2e "* ]]; then
  for dtype in ${E2E_DTYPES:-fp32 fp16 bf16}; do
    step "export_${dtype}" 150 bash -o pipefail -c "python3 -m mamba_export export --model preset:mamba-130m \
      ${e2e}/${dtype} --device cuda --dtype ${dtype} --no-check --force 2>&1 | tee -a '${log}' \
      && python3 -m mamba_export info ${e2e}/${dtype} 2>&1 | tee -a '${log}'"
    step "parity_${dtype}" 200 bash -o pipefail -c "python3 -m mamba_export check ${e2e}/${dtype} --provider cuda \
      --json '${out}/parity_${dtype}.json' 2>&1 | tee -a '${log}'"
  done
  step greedy_fp32 120 bash -o pipefail -c "python3 scripts/gpu_greedy_check.py ${e2e}/fp32 --tokens 64 \
    --json '${out}/greedy_fp32.json' 2>&1 | tee -a '${log}'"
fi
if [[ "${steps}" == *" e2e_bench "* ]]; then
  step bench_e2e 420 bash -o pipefail -c "python3 scripts/bench_e2e.py --provider cuda --dtype fp16 \
    --backends custom --decode-tokens 64 --repeats 3 --workdir ${e2e}/bench ${E2E_FLAGS:-} \
    --json '${out}/bench_e2e_gpu.json' 2>&1 | tee -a '${log}'"
  step plot_e2e 60 python3 scripts/plot_e2e.py "${out}/bench_e2e_gpu.json" "${out}/e2e.png"
fi
if [[ "${steps}" == *" e2e_big "* || "${steps}" == *" e2e_bf16 "* ]]; then
  step bench_e2e_bf16 240 bash -o pipefail -c "python3 scripts/bench_e2e.py --provider cuda --dtype bf16 \
    --backends custom --no-torch --lengths 2048 --batches 1 32 --decode-tokens 64 --repeats 3 \
    --workdir ${e2e}/bench_bf16 ${E2E_FLAGS:-} --json '${out}/bench_e2e_gpu_bf16.json' 2>&1 | tee -a '${log}'"
fi
if [[ "${steps}" == *" e2e_big "* || "${steps}" == *" e2e_1p4b "* ]]; then
  step bench_e2e_1_4b 300 bash -o pipefail -c "python3 scripts/bench_e2e.py --model preset:mamba-1.4b \
    --provider cuda --dtype fp16 --backends custom --lengths 2048 --batches 1 32 --decode-tokens 64 --repeats 3 \
    --workdir ${e2e}/bench_1_4b ${E2E_FLAGS:-} --json '${out}/bench_e2e_gpu_1_4b.json' 2>&1 | tee -a '${log}'"
fi

# 7a. Decode's products alone: our kernels (the Linear op's launchers) against cuBLAS in CUDA graphs.
if [[ "${steps}" == *" products "* ]]; then
  step products 300 bash -o pipefail -c "OUT='${out}/products' bash scripts/bench_decode_products.sh 2>&1 \
    | tee '${out}/decode_products.log'"
fi

# 7b. The baselines: mamba-ssm 2.3.2.post1 and causal-conv1d 1.7.0 (sm_90 wheels built elsewhere by
#     scripts/stage_baselines.sh), installed into BASELINE_DIR, never into the environment.
if [[ "${steps}" == *" baselines "* ]]; then
  baseline_dir="${BASELINE_DIR:-/tmp/baselines}"
  if [[ -n "${BASELINE_STAGE:-}" ]]; then
    step baselines_install 120 bash -o pipefail -c "cd '${BASELINE_STAGE}' && sha256sum -c parts.sha256 \
      && rm -rf /tmp/baseline_wheels && mkdir -p /tmp/baseline_wheels \
      && cat part[0-9]* | xz -d | tar -xf - -C /tmp/baseline_wheels \
      && if python3 -m pip --version > /dev/null 2>&1; then python3 -m pip install -q --no-index --no-deps \
        --no-compile --target '${baseline_dir}' --upgrade /tmp/baseline_wheels/*.whl; \
      else echo 'no pip: unzipping the wheels (they hold no .data folder)'; \
        for w in /tmp/baseline_wheels/*.whl; do python3 -m zipfile -e \$w '${baseline_dir}' || exit 1; done; fi \
      && ls '${baseline_dir}'"
  fi
  step bench_baselines 480 bash -o pipefail -c "PYTHONPATH='${baseline_dir}'\${PYTHONPATH:+:\${PYTHONPATH}} \
    python3 scripts/bench_baselines.py --json '${out}/bench_baselines.json' 2>&1 | tee '${out}/bench_baselines.log'"
fi

# 8. What ran, where, with what.
FAILURES="${failures[*]:-}" ROUND_SECONDS=$(( $(date +%s) - started )) python3 - "${out}" <<'EOF'
import json, os, subprocess, sys, time
from pathlib import Path

import torch

try:
    import onnxruntime as ort
    ort_version = ort.__version__
except ImportError:
    ort_version = None

out = Path(sys.argv[1])
def last_line(name):
    path = out / name
    lines = [l for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
    return lines[-1] if lines else None
smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                     capture_output=True, text=True).stdout.strip()
info = dict(date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), commit=os.environ.get("MAMBA_EXPORT_COMMIT"),
            gpu_and_driver=smi, torch=torch.__version__, torch_cuda=torch.version.cuda,
            onnxruntime=ort_version, library=os.environ.get("MAMBA_EXPORT_OPS_LIBRARY"),
            seconds=int(os.environ["ROUND_SECONDS"]), failures=os.environ["FAILURES"].split(),
            results={name: last_line(name) for name in
                     ("pytest_cuda_op.log", "memcheck.log", "pytest_gpu_other.log", "pytest_half_precision.log",
                      "bench_quality_bf16_cuda.log", "e2e.log", "bench_op_gpu.log", "bench_baselines.log")})
(out / "round.json").write_text(json.dumps(info, indent=1) + "\n")
print(json.dumps(info, indent=1))
EOF
if [[ "${ROUND_PACK:-0}" == 1 ]]; then
  (cd "${out}" && find . -mindepth 1 -maxdepth 1 ! -name round.json ! -name round_files.tgz -print0 \
    | tar --null -czf round_files.tgz --remove-files -T -) && echo "packed into ${out}/round_files.tgz"
fi
if (( ${#failures[@]} > 0 )); then echo "round finished with failures: ${failures[*]}"; exit 1; fi
echo "round passed"
