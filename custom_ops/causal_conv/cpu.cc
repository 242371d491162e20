// The CPU kernel of CausalConv1d. Per (batch row, block of channels) it walks time,
// reading each step's taps straight from x (contiguous channels) or, for the first
// K - 1 steps, from conv_state; masked inputs are skipped, never multiplied, so
// whatever they hold cannot reach a sum.
#include "causal_conv/cpu.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/fast_math.h"
#include "common/half.h"

namespace mamba_export_ops {
namespace {

constexpr int64_t kBlock = 64;           // channels per block: 16 AVX-512 lanes x 4
constexpr int64_t kStackTaps = 16;       // wider kernels keep their transposed taps on the heap
constexpr int64_t kMinMacsPerTask = 1 << 15;  // below this a thread pool hand-off costs more than it saves

template <typename Io>
class BlockConv {
 public:
  using Storage = typename Io::Storage;

  BlockConv(const CausalConvParams& p, int64_t b, int64_t c0, float* taps)
      : p_(p), n_(std::min(kBlock, p.channels - c0)), columns_(p.width - 1), taps_(taps) {
    x_ = static_cast<const Storage*>(p.x) + (b * p.length) * p.channels + c0;
    y_ = static_cast<Storage*>(p.y) + (b * p.length) * p.channels + c0;
    state_ = p.conv_state ? static_cast<const Storage*>(p.conv_state) + (b * p.channels + c0) * columns_ : nullptr;
    new_state_ = static_cast<Storage*>(p.new_conv_state) + (b * p.channels + c0) * columns_;
    mask_ = p.mask ? p.mask + b * p.length : nullptr;
    // Taps transposed to [k][c] so the inner loops read them contiguously.
    for (int64_t c = 0; c < n_; ++c) {
      for (int64_t k = 0; k < p.width; ++k) taps_[k * kBlock + c] = p.weight[(c0 + c) * p.width + k];
      bias_[c] = p.bias ? p.bias[c0 + c] : 0.0f;
    }
  }

  void Run() {
    for (int64_t t = 0; t < p_.length; ++t) Step(t);
    WriteState();
  }

 private:
  bool Kept(int64_t t) const { return mask_ == nullptr || mask_[t] != 0; }

  void Step(int64_t t) {
    Storage* y = y_ + t * p_.channels;
    if (!Kept(t)) {
      for (int64_t c = 0; c < n_; ++c) y[c] = Io::Store(0.0f);
      return;
    }
    float acc[kBlock] = {};
    for (int64_t k = 0; k < p_.width; ++k) {
      const float* w = taps_ + k * kBlock;
      const int64_t j = t + k - columns_;  // the step of x under tap k; negative: a state column
      if (j >= 0) {
        if (!Kept(j)) continue;  // a dropped input is 0
        const Storage* x = x_ + j * p_.channels;
#pragma omp simd
        for (int64_t c = 0; c < n_; ++c) acc[c] += w[c] * Io::Load(x[c]);
      } else if (state_ != nullptr) {
        const int64_t column = columns_ + j;
        for (int64_t c = 0; c < n_; ++c) acc[c] += w[c] * Io::Load(state_[c * columns_ + column]);
      }
    }
#pragma omp simd
    for (int64_t c = 0; c < n_; ++c) {
      const float v = acc[c] + bias_[c];
      y[c] = Io::Store(p_.silu ? FastSilu(v) : v);
    }
  }

  // The window's last K - 1 entries, copied bit for bit (dropped inputs as 0).
  void WriteState() {
    for (int64_t i = 0; i < columns_; ++i) {
      const int64_t j = p_.length + i - columns_;  // the step of x in this column; negative: old state
      for (int64_t c = 0; c < n_; ++c) {
        Storage value = Io::Store(0.0f);
        if (j >= 0) {
          if (Kept(j)) value = x_[j * p_.channels + c];
        } else if (state_ != nullptr) {
          value = state_[c * columns_ + p_.length + i];
        }
        new_state_[c * columns_ + i] = value;
      }
    }
  }

  const CausalConvParams& p_;
  const int64_t n_;
  const int64_t columns_;
  float* taps_;
  float bias_[kBlock] = {};
  const Storage* x_;
  Storage* y_;
  const Storage* state_;
  Storage* new_state_;
  const int64_t* mask_;
};

struct Job {
  const CausalConvParams* params;
  int64_t blocks_per_row;
  int64_t blocks_per_task;
  int64_t blocks;
};

template <typename Io>
void RunTask(void* raw_job, size_t task) {
  const Job& job = *static_cast<const Job*>(raw_job);
  const CausalConvParams& p = *job.params;
  float stack_taps[kStackTaps * kBlock];
  std::vector<float> heap_taps;
  float* taps = stack_taps;
  if (p.width > kStackTaps) {
    heap_taps.resize(static_cast<size_t>(p.width * kBlock));
    taps = heap_taps.data();
  }
  const int64_t first = static_cast<int64_t>(task) * job.blocks_per_task;
  const int64_t last = std::min(job.blocks, first + job.blocks_per_task);
  for (int64_t block = first; block < last; ++block) {
    const int64_t b = block / job.blocks_per_row;
    const int64_t c0 = (block % job.blocks_per_row) * kBlock;
    BlockConv<Io>(p, b, c0, taps).Run();
  }
}

template <typename Io>
void RunTyped(const CausalConvParams& p, const ParallelFor& parallel_for) {
  Job job{&p, (p.channels + kBlock - 1) / kBlock, 1, 0};
  job.blocks = p.batch * job.blocks_per_row;
  const int64_t macs_per_block = std::max<int64_t>(1, p.length * p.width * kBlock);
  job.blocks_per_task = std::max<int64_t>(1, kMinMacsPerTask / macs_per_block);
  const int64_t tasks = (job.blocks + job.blocks_per_task - 1) / job.blocks_per_task;
  // A single task runs on the calling thread: a decode step is smaller than a hand-off.
  if (tasks == 1) return RunTask<Io>(&job, 0);
  parallel_for.run(parallel_for.runner_state, RunTask<Io>, static_cast<size_t>(tasks), &job);
}

}  // namespace

void RunCausalConvCpu(const CausalConvParams& params, const ParallelFor& parallel_for) {
  if (params.batch * params.channels == 0) return;
  switch (params.dtype) {
    case ConvDType::kFloat32: return RunTyped<Float32Io>(params, parallel_for);
    case ConvDType::kFloat16: return RunTyped<Float16Io>(params, parallel_for);
    case ConvDType::kBFloat16: return RunTyped<BFloat16Io>(params, parallel_for);
  }
}

}  // namespace mamba_export_ops
