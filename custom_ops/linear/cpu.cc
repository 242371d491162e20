// The CPU kernel of Linear: y[m, n] = dot(x[m, :], weight[n, :]) in float32, rounded once.
// The op is meant for CUDA (docs/linear_op.md); this kernel makes a graph with it run, and be
// checked, on the CPU too. Both operands of every dot product are contiguous rows, so the
// inner loop vectorises; a task owns a block of output columns and widens its weight rows once.
#include "linear/cpu.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "causal_conv/cpu_rows.h"
#include "common/cpu_dispatch.h"
#include "common/fast_math.h"

namespace mamba_export_ops {
namespace {

constexpr int64_t kMinProductsPerTask = 1 << 15;  // below this a thread pool hand-off costs more than it saves
constexpr int64_t kMinColumnsPerTask = 4;
constexpr int64_t kMaxColumnsPerTask = 256;

struct Job {
  const LinearParams* params;
  const float* x;  // (rows, K) float32
  int64_t columns_per_task;
};

MAMBA_INLINE float Dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t k = 0; k < n; ++k) sum += a[k] * b[k];
  return sum;
}

template <typename Rows>
MAMBA_INLINE void RunColumns(const LinearParams& p, const float* x, int64_t first, int64_t last, float* weight) {
  using Storage = typename Rows::Storage;
  const int64_t k = p.inner;
  for (int64_t n = first; n < last; ++n) {
    Rows::Load(static_cast<const Storage*>(p.weight) + n * k, weight + (n - first) * k, k);
  }
  Storage* y = static_cast<Storage*>(p.y);
  for (int64_t m = 0; m < p.rows; ++m) {
    const float* row = x + m * k;
    for (int64_t n = first; n < last; ++n) y[m * p.outer + n] = Rows::StoreOne(Dot(row, weight + (n - first) * k, k));
  }
}

// Columns [first, last) of the call; compiled for every instruction set MAMBA_CPU_CLONES names.
MAMBA_CPU_CLONES void LinearColumns(const LinearParams& p, const float* x, int64_t first, int64_t last, float* weight) {
  switch (p.dtype) {
    case LinearDType::kFloat32: return RunColumns<Float32Rows>(p, x, first, last, weight);
    case LinearDType::kFloat16: return RunColumns<Float16Rows>(p, x, first, last, weight);
    case LinearDType::kBFloat16: return RunColumns<BFloat16Rows>(p, x, first, last, weight);
  }
}

void RunTask(void* raw_job, size_t task) {
  const Job& job = *static_cast<const Job*>(raw_job);
  const LinearParams& p = *job.params;
  const int64_t first = static_cast<int64_t>(task) * job.columns_per_task;
  const int64_t last = std::min(p.outer, first + job.columns_per_task);
  std::vector<float> weight(static_cast<size_t>((last - first) * p.inner));
  LinearColumns(p, job.x, first, last, weight.data());
}

template <typename Rows>
void WidenX(const LinearParams& p, std::vector<float>& x) {
  Rows::Load(static_cast<const typename Rows::Storage*>(p.x), x.data(), p.rows * p.inner);
}

}  // namespace

void RunLinearCpu(const LinearParams& p, const ParallelFor& parallel_for) {
  if (p.rows * p.outer == 0) return;
  std::vector<float> x(static_cast<size_t>(p.rows * p.inner));
  switch (p.dtype) {
    case LinearDType::kFloat32: WidenX<Float32Rows>(p, x); break;
    case LinearDType::kFloat16: WidenX<Float16Rows>(p, x); break;
    case LinearDType::kBFloat16: WidenX<BFloat16Rows>(p, x); break;
  }
  const int64_t per_column = std::max<int64_t>(1, p.rows * p.inner);
  Job job{&p, x.data(),
          std::clamp<int64_t>(kMinProductsPerTask / per_column, kMinColumnsPerTask, kMaxColumnsPerTask)};
  const int64_t tasks = (p.outer + job.columns_per_task - 1) / job.columns_per_task;
  // A single task runs on the calling thread: a small product is smaller than a hand-off.
  if (tasks == 1) return RunTask(&job, 0);
  parallel_for.run(parallel_for.runner_state, RunTask, static_cast<size_t>(tasks), &job);
}

}  // namespace mamba_export_ops
