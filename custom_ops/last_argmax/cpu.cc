// The CPU kernel of LastArgMax. Per sequence: the last position's row of logits is
// widened to float32 a chunk at a time (causal_conv/cpu_rows.h: F16C for float16 where
// present) and compared in index order, keeping the first maximum; the first NaN ends the
// row, since it is the answer (NumPy's rule). Only the last position is ever read.
#include "last_argmax/cpu.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "causal_conv/cpu_rows.h"

namespace mamba_export_ops {
namespace {

constexpr int64_t kMinValuesPerTask = 1 << 15;  // below this a thread pool hand-off costs more than it saves
constexpr int64_t kChunk = 256;                 // values converted per step (stack buffer)

struct Job {
  const LastArgMaxParams* params;
  int64_t rows_per_task;
};

// The index of the first maximum of row[0, n), or of its first NaN. Per chunk, one vectorised
// pass finds its maximum and whether it holds a NaN; only a chunk with a NaN, or whose maximum
// beats the best so far, is scanned again for the index (its first NaN, or its first value
// equal to the maximum: -0.0 and +0.0 are equal, as in the comparison).
template <typename Rows>
int64_t RowArgMax(const typename Rows::Storage* row, int64_t n) {
  float values[kChunk];
  float best = 0.0f;
  int64_t best_index = -1;
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int64_t count = std::min(kChunk, n - c0);
    Rows::Load(row + c0, values, count);
    float top = -INFINITY;
    int nan = 0;
#pragma omp simd reduction(max : top) reduction(| : nan)
    for (int64_t c = 0; c < count; ++c) {
      top = values[c] > top ? values[c] : top;
      nan |= values[c] != values[c];
    }
    if (nan) {
      for (int64_t c = 0;; ++c) {
        if (std::isnan(values[c])) return c0 + c;
      }
    }
    if (best_index < 0 || top > best) {
      int64_t c = 0;
      while (values[c] != top) ++c;
      best = top;
      best_index = c0 + c;
    }
  }
  return best_index;
}

template <typename Rows>
void RunRows(const LastArgMaxParams& p, int64_t first, int64_t last) {
  using Storage = typename Rows::Storage;
  const Storage* logits = static_cast<const Storage*>(p.logits);
  for (int64_t b = first; b < last; ++b) p.tokens[b] = RowArgMax<Rows>(logits + LastRowOffset(p, b), p.vocab);
}

void RunTask(void* raw_job, size_t task) {
  const Job& job = *static_cast<const Job*>(raw_job);
  const LastArgMaxParams& p = *job.params;
  const int64_t first = static_cast<int64_t>(task) * job.rows_per_task;
  const int64_t last = std::min(p.batch, first + job.rows_per_task);
  switch (p.dtype) {
    case ArgMaxDType::kFloat32: return RunRows<Float32Rows>(p, first, last);
    case ArgMaxDType::kFloat16: return RunRows<Float16Rows>(p, first, last);
    case ArgMaxDType::kBFloat16: return RunRows<BFloat16Rows>(p, first, last);
  }
}

}  // namespace

void RunLastArgMaxCpu(const LastArgMaxParams& p, const ParallelFor& parallel_for) {
  if (p.batch == 0) return;
  Job job{&p, std::max<int64_t>(1, kMinValuesPerTask / p.vocab)};
  const int64_t tasks = (p.batch + job.rows_per_task - 1) / job.rows_per_task;
  // A single task runs on the calling thread: a decode step at batch 1 is smaller than a hand-off.
  if (tasks == 1) return RunTask(&job, 0);
  parallel_for.run(parallel_for.runner_state, RunTask, static_cast<size_t>(tasks), &job);
}

}  // namespace mamba_export_ops
