// The CPU kernel of ResidualRMSNorm. Per row: widen x (and add the residual) straight
// into residual_out, which is the float32 sum s; sum its squares; then write
// weight * s * inv rounded once to T. The weight is widened once per task. Rows of I/O
// values are converted with causal_conv/cpu_rows.h (F16C for float16 where present).
#include "residual_norm/cpu.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "causal_conv/cpu_rows.h"
#include "common/cpu_dispatch.h"
#include "common/fast_math.h"

namespace mamba_export_ops {
namespace {

constexpr int64_t kMinValuesPerTask = 1 << 15;  // below this a thread pool hand-off costs more than it saves
constexpr int64_t kChunk = 256;                 // values converted per step (stack buffer)

struct Job {
  const ResidualNormParams* params;
  int64_t rows_per_task;
};

template <typename Rows>
MAMBA_INLINE void RunRows(const ResidualNormParams& p, int64_t first, int64_t last, float* weight) {
  using Storage = typename Rows::Storage;
  const int64_t h = p.hidden;
  for (int64_t c0 = 0; c0 < h; c0 += kChunk) {
    Rows::Load(static_cast<const Storage*>(p.weight) + c0, weight + c0, std::min(kChunk, h - c0));
  }
  float out[kChunk];
  for (int64_t r = first; r < last; ++r) {
    const Storage* x = static_cast<const Storage*>(p.x) + r * h;
    float* s = p.residual_out + r * h;
    Rows::Load(x, s, h);
    if (p.residual != nullptr) {
      const float* residual = p.residual + r * h;
#pragma omp simd
      for (int64_t c = 0; c < h; ++c) s[c] += residual[c];
    }
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < h; ++c) sum += s[c] * s[c];
    const float inv = 1.0f / std::sqrt(sum / static_cast<float>(h) + p.epsilon);
    Storage* y = static_cast<Storage*>(p.y) + r * h;
    for (int64_t c0 = 0; c0 < h; c0 += kChunk) {
      const int64_t n = std::min(kChunk, h - c0);
#pragma omp simd
      for (int64_t c = 0; c < n; ++c) out[c] = weight[c0 + c] * (s[c0 + c] * inv);
      Rows::Store(out, y + c0, n);
    }
  }
}

// Rows [first, last) of the call; compiled for every instruction set MAMBA_CPU_CLONES names.
MAMBA_CPU_CLONES void NormRows(const ResidualNormParams& p, int64_t first, int64_t last, float* weight) {
  switch (p.dtype) {
    case NormDType::kFloat32: return RunRows<Float32Rows>(p, first, last, weight);
    case NormDType::kFloat16: return RunRows<Float16Rows>(p, first, last, weight);
    case NormDType::kBFloat16: return RunRows<BFloat16Rows>(p, first, last, weight);
  }
}

void RunTask(void* raw_job, size_t task) {
  const Job& job = *static_cast<const Job*>(raw_job);
  const ResidualNormParams& p = *job.params;
  std::vector<float> weight(static_cast<size_t>(p.hidden));
  const int64_t first = static_cast<int64_t>(task) * job.rows_per_task;
  NormRows(p, first, std::min(p.rows, first + job.rows_per_task), weight.data());
}

}  // namespace

void RunResidualNormCpu(const ResidualNormParams& p, const ParallelFor& parallel_for) {
  if (p.rows * p.hidden == 0) return;
  Job job{&p, std::max<int64_t>(1, kMinValuesPerTask / p.hidden)};
  const int64_t tasks = (p.rows + job.rows_per_task - 1) / job.rows_per_task;
  // A single task runs on the calling thread: a decode step is smaller than a hand-off.
  if (tasks == 1) return RunTask(&job, 0);
  parallel_for.run(parallel_for.runner_state, RunTask, static_cast<size_t>(tasks), &job);
}

}  // namespace mamba_export_ops
