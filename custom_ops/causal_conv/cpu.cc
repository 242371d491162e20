// The CPU kernel of CausalConv1d. Per (block of channels, batch row) it walks time,
// widening each input row once into a float32 ring that holds the window (the state's
// columns first); a dropped input enters the ring as 0 by a select, never a product,
// so whatever x holds there cannot reach a sum. Blocks are ordered channel block
// first, so a task reuses a block's taps across batch rows (decode: one step per row).
#include "causal_conv/cpu.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "causal_conv/cpu_rows.h"
#include "common/cpu_dispatch.h"
#include "common/fast_math.h"

namespace mamba_export_ops {
namespace {

constexpr int64_t kBlock = 64;                // channels per block: 16 AVX-512 lanes x 4
constexpr int64_t kStackTaps = 16;            // wider kernels keep their taps and window on the heap
constexpr int64_t kMinMacsPerTask = 1 << 15;  // below this a thread pool hand-off costs more than it saves

// The taps of channels c0 .. c0+n-1 transposed to [k][c] (so inner loops read them
// contiguously), then their biases.
struct BlockTaps {
  float* taps;  // K * kBlock
  float* bias;  // kBlock

  MAMBA_INLINE void Load(const CausalConvParams& p, int64_t c0, int64_t n) const {
    for (int64_t c = 0; c < n; ++c) {
      for (int64_t k = 0; k < p.width; ++k) taps[k * kBlock + c] = p.weight[(c0 + c) * p.width + k];
      bias[c] = p.bias ? p.bias[c0 + c] : 0.0f;
    }
  }
};

// One batch row and one block of up to kBlock channels. The window is kept converted
// to float32 in a ring of K rows (window position w in row w % K).
template <typename Rows>
class BlockConv {
 public:
  using Storage = typename Rows::Storage;

  MAMBA_INLINE BlockConv(const CausalConvParams& p, int64_t b, int64_t c0, const BlockTaps& taps, float* ring)
      : p_(p), n_(std::min(kBlock, p.channels - c0)), columns_(p.width - 1), taps_(taps), ring_(ring) {
    x_ = static_cast<const Storage*>(p.x) + (b * p.length) * p.x_step + c0;
    y_ = static_cast<Storage*>(p.y) + (b * p.length) * p.channels + c0;
    new_state_ = static_cast<Storage*>(p.new_conv_state) + (b * p.channels + c0) * columns_;
    mask_ = p.mask ? p.mask + b * p.length : nullptr;
    // Window positions 0 .. K-2: the state (its K-1 columns per channel are contiguous), or zeros.
    const Storage* state =
        p.conv_state ? static_cast<const Storage*>(p.conv_state) + (b * p.channels + c0) * columns_ : nullptr;
    for (int64_t i = 0; i < columns_; ++i) {
      float* row = Row(i);
      for (int64_t c = 0; c < n_; ++c) row[c] = state ? Rows::LoadOne(state[c * columns_ + i]) : 0.0f;
    }
  }

  MAMBA_INLINE void Run() {
    // oldest = t % K, kept without a division per step.
    for (int64_t t = 0, oldest = 0; t < p_.length; ++t, oldest = oldest + 1 == p_.width ? 0 : oldest + 1) {
      Step(t, oldest);
    }
    // The window's last K - 1 positions, L .. L+K-2; exact, as they were widened from T.
    for (int64_t i = 0; i < columns_; ++i) {
      const float* row = Row(p_.length + i);
      for (int64_t c = 0; c < n_; ++c) new_state_[c * columns_ + i] = Rows::StoreOne(row[c]);
    }
  }

 private:
  MAMBA_INLINE float* Row(int64_t position) const { return ring_ + (position % p_.width) * kBlock; }

  // Step t; oldest is the ring row of window position t (t % K).
  MAMBA_INLINE void Step(int64_t t, int64_t oldest) {
    float* newest = ring_ + (oldest == 0 ? columns_ : oldest - 1) * kBlock;  // position t + K - 1
    float out[kBlock];
    if (mask_ != nullptr && mask_[t] == 0) {  // a select: whatever x holds here never enters the ring
      for (int64_t c = 0; c < n_; ++c) newest[c] = out[c] = 0.0f;
      Rows::Store(out, y_ + t * p_.channels, n_);
      return;
    }
    Rows::Load(x_ + t * p_.x_step, newest, n_);
    float acc[kBlock] = {};
    for (int64_t k = 0, row = oldest; k < p_.width; ++k, row = row + 1 == p_.width ? 0 : row + 1) {
      const float* w = taps_.taps + k * kBlock;
      const float* in = ring_ + row * kBlock;
#pragma omp simd
      for (int64_t c = 0; c < n_; ++c) acc[c] += w[c] * in[c];
    }
#pragma omp simd
    for (int64_t c = 0; c < n_; ++c) {
      const float v = acc[c] + taps_.bias[c];
      out[c] = p_.silu ? FastSilu(v) : v;
    }
    Rows::Store(out, y_ + t * p_.channels, n_);
  }

  const CausalConvParams& p_;
  const int64_t n_;
  const int64_t columns_;
  const BlockTaps& taps_;
  float* ring_;
  const Storage* x_;
  Storage* y_;
  Storage* new_state_;
  const int64_t* mask_;
};

struct Job {
  const CausalConvParams* params;
  int64_t blocks_per_task;
  int64_t blocks;  // batch * channel blocks, channel block major
};

template <typename Rows>
MAMBA_INLINE void RunBlocks(const CausalConvParams& p, int64_t first, int64_t last, float* scratch) {
  const BlockTaps taps{scratch, scratch + p.width * kBlock};
  float* ring = scratch + (p.width + 1) * kBlock;
  int64_t loaded = -1;
  for (int64_t block = first; block < last; ++block) {
    const int64_t c0 = (block / p.batch) * kBlock;
    if (c0 != loaded) {
      taps.Load(p, c0, std::min(kBlock, p.channels - c0));
      loaded = c0;
    }
    BlockConv<Rows>(p, block % p.batch, c0, taps, ring).Run();
  }
}

// Blocks [first, last) of the call; compiled for every instruction set MAMBA_CPU_CLONES
// names, with the whole block loop inlined.
MAMBA_CPU_CLONES void ConvBlocks(const Job& job, int64_t first, int64_t last, float* scratch) {
  const CausalConvParams& p = *job.params;
  switch (p.dtype) {
    case ConvDType::kFloat32: return RunBlocks<Float32Rows>(p, first, last, scratch);
    case ConvDType::kFloat16: return RunBlocks<Float16Rows>(p, first, last, scratch);
    case ConvDType::kBFloat16: return RunBlocks<BFloat16Rows>(p, first, last, scratch);
  }
}

void RunTask(void* raw_job, size_t task) {
  const Job& job = *static_cast<const Job*>(raw_job);
  const int64_t width = job.params->width;
  float stack_scratch[(2 * kStackTaps + 1) * kBlock];
  std::vector<float> heap_scratch;
  float* scratch = stack_scratch;
  if (width > kStackTaps) {
    heap_scratch.resize(static_cast<size_t>((2 * width + 1) * kBlock));
    scratch = heap_scratch.data();
  }
  const int64_t first = static_cast<int64_t>(task) * job.blocks_per_task;
  ConvBlocks(job, first, std::min(job.blocks, first + job.blocks_per_task), scratch);
}

}  // namespace

void RunCausalConvCpu(const CausalConvParams& p, const ParallelFor& parallel_for) {
  if (p.batch * p.channels == 0) return;
  Job job{&p, 1, p.batch * ((p.channels + kBlock - 1) / kBlock)};
  const int64_t macs_per_block = std::max<int64_t>(1, p.length * p.width * kBlock);
  job.blocks_per_task = std::max<int64_t>(1, kMinMacsPerTask / macs_per_block);
  const int64_t tasks = (job.blocks + job.blocks_per_task - 1) / job.blocks_per_task;
  // A single task runs on the calling thread: a decode step is smaller than a hand-off.
  if (tasks == 1) return RunTask(&job, 0);
  parallel_for.run(parallel_for.runner_state, RunTask, static_cast<size_t>(tasks), &job);
}

}  // namespace mamba_export_ops
