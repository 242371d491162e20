// The CPU selective scan.
//
// Where the time goes: every step of every channel needs N exponentials
// exp(dt * A[d, n]). The scan therefore runs kLanes channels side by side, one channel
// per vector lane: each state update is a vector operation over channels, with no
// horizontal sums (y_t = <C_t, h_t> accumulates lane-wise over n) and N independent
// dependency chains per step. Channels of a block share their batch and their groups
// of B and C, so B[n, t] and C[n, t] are the same for every lane.
//
// B and C arrive as (..., N, L), n strided by L; they are copied once into time-major
// float32 panels (..., L, N). Those panels (the size of B and C) and the per-block
// states (the size of last_state) are the only scratch memory; nothing of size
// B * D * L * N exists.
#include "selective_scan/cpu.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "common/fast_math.h"
#include "common/half.h"
#include "mamba_export_ops/contract.h"

// Compile the block loop for AVX-512 and AVX2+FMA machines as well as for baseline
// x86-64; the loader picks the best one the CPU supports (GCC; other compilers build
// the baseline only).
#if defined(MAMBA_EXPORT_CPU_DISPATCH) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MAMBA_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MAMBA_CPU_CLONES
#endif

namespace mamba_export_ops {
namespace {

constexpr int kLanes = 16;       // channels per block: one 512-bit or two 256-bit vectors
constexpr int64_t kChunk = 64;   // time steps staged at once: 3 x 4 KiB of block buffers
constexpr int64_t kMinUpdatesPerTask = 1 << 16;  // lane-state updates that pay for a task
constexpr int64_t kMaxTasks = 1024;

// ---- blocks of channels -----------------------------------------------------------

// How the (batch, channel) rows are cut into blocks of at most kLanes channels that
// never straddle a group of B or of C.
struct BlockLayout {
  int64_t segment;             // channels per run sharing both groups
  int64_t blocks_per_segment;
  int64_t blocks_per_batch;
  int64_t blocks;              // in total
};

BlockLayout MakeLayout(const SelectiveScanParams& p) {
  BlockLayout layout;
  const int64_t per_group_b = p.groups_b ? p.dim / p.groups_b : p.dim;
  const int64_t per_group_c = p.groups_c ? p.dim / p.groups_c : p.dim;
  layout.segment = std::gcd(per_group_b, per_group_c);
  layout.blocks_per_segment = (layout.segment + kLanes - 1) / kLanes;
  layout.blocks_per_batch = (p.dim / layout.segment) * layout.blocks_per_segment;
  layout.blocks = p.batch * layout.blocks_per_batch;
  return layout;
}

struct Job {
  const SelectiveScanParams* params;
  BlockLayout layout;
  const float* b_panel;  // (batch, groups_b or 1, L, N)
  const float* c_panel;  // (batch, groups_c or 1, L, N)
  float* scratch;        // per task: a and h, N x kLanes each, so tasks allocate nothing
  int64_t blocks_per_task;
};

// Buffers of one chunk of one block, one row per lane: value[lane * kChunk + t].
// Staging and finishing run along time (contiguous, vectorised); the recurrence
// reads and writes them across lanes once per step, which its N state updates
// per step amortise.
struct ChunkBuffers {
  alignas(64) float dt[kLanes * kChunk];
  alignas(64) float dtu[kLanes * kChunk];
  alignas(64) float y[kLanes * kChunk];
};

// dt = softplus?(delta + bias) and dt * u along time for one channel (row).
template <typename Io>
MAMBA_INLINE void StageRow(const SelectiveScanParams& p, int64_t row, int64_t t0, int64_t steps,
                           float* __restrict dt, float* __restrict dtu) {
  using S = typename Io::Storage;
  const S* u = static_cast<const S*>(p.u) + row * p.length + t0;
  const S* delta = static_cast<const S*>(p.delta) + row * p.length + t0;
  const float bias = p.delta_bias ? p.delta_bias[row % p.dim] : 0.0f;
  if (p.delta_softplus) {
    for (int64_t t = 0; t < steps; ++t) {
      dt[t] = FastSoftplus(Io::Load(delta[t]) + bias, kSoftplusThreshold);
    }
  } else {
    for (int64_t t = 0; t < steps; ++t) dt[t] = Io::Load(delta[t]) + bias;
  }
  for (int64_t t = 0; t < steps; ++t) dtu[t] = dt[t] * Io::Load(u[t]);
}

// The lanes of a block: lane w is channel d0 + w; lanes past `count` are padding with
// dt = 0, so exp(0) = 1 keeps their zero state at zero.
template <typename Io>
MAMBA_INLINE void StageBlock(const SelectiveScanParams& p, int64_t first_row, int count, int64_t t0,
                             int64_t steps, ChunkBuffers& buf) {
  for (int w = 0; w < kLanes; ++w) {
    float* dt = buf.dt + w * kChunk;
    float* dtu = buf.dtu + w * kChunk;
    if (w < count) {
      StageRow<Io>(p, first_row + w, t0, steps, dt, dtu);
    } else {
      std::fill_n(dt, steps, 0.0f);
      std::fill_n(dtu, steps, 0.0f);
    }
  }
}

// h = exp(dt * A) * h + dt * u * B_t and y_t = <C_t, h> for `steps` steps, lane-wise.
// a and h are (N, kLanes); b and c point at step t0 of time-major panels.
MAMBA_INLINE void RecurBlock(const float* __restrict a, const float* __restrict b,
                             const float* __restrict c, int64_t state, int64_t steps,
                             ChunkBuffers& __restrict buf, float* __restrict h) {
  for (int64_t t = 0; t < steps; ++t) {
    const float* __restrict bt = b + t * state;
    const float* __restrict ct = c + t * state;
    float dt[kLanes], dtu[kLanes], acc[kLanes];
    for (int w = 0; w < kLanes; ++w) {
      dt[w] = buf.dt[w * kChunk + t];
      dtu[w] = buf.dtu[w * kChunk + t];
      acc[w] = 0.0f;
    }
    for (int64_t n = 0; n < state; ++n) {
      const float bn = bt[n], cn = ct[n];
      const float* __restrict an = a + n * kLanes;
      float* __restrict hn = h + n * kLanes;
      for (int w = 0; w < kLanes; ++w) {
        const float next = FastExp(dt[w] * an[w]) * hn[w] + dtu[w] * bn;
        hn[w] = next;
        acc[w] += next * cn;
      }
    }
    for (int w = 0; w < kLanes; ++w) buf.y[w * kChunk + t] = acc[w];
  }
}

// y = (scan + D * u) * silu(z) along time for one channel, stored in the I/O dtype.
template <typename Io>
MAMBA_INLINE void FinishRow(const SelectiveScanParams& p, int64_t row, int64_t t0, int64_t steps,
                            const float* scan) {
  using S = typename Io::Storage;
  const S* u = static_cast<const S*>(p.u) + row * p.length + t0;
  S* y = static_cast<S*>(p.y) + row * p.length + t0;
  const float skip = p.D ? p.D[row % p.dim] : 0.0f;
  const bool has_skip = p.D != nullptr;
  if (p.z) {
    const S* z = static_cast<const S*>(p.z) + row * p.length + t0;
    for (int64_t t = 0; t < steps; ++t) {
      const float out = has_skip ? scan[t] + skip * Io::Load(u[t]) : scan[t];
      y[t] = Io::Store(out * FastSilu(Io::Load(z[t])));
    }
  } else {
    for (int64_t t = 0; t < steps; ++t) {
      y[t] = Io::Store(has_skip ? scan[t] + skip * Io::Load(u[t]) : scan[t]);
    }
  }
}

template <typename Io>
MAMBA_INLINE void FinishBlock(const SelectiveScanParams& p, int64_t first_row, int count, int64_t t0,
                              int64_t steps, ChunkBuffers& buf) {
  for (int w = 0; w < count; ++w) FinishRow<Io>(p, first_row + w, t0, steps, buf.y + w * kChunk);
}

// Loads A and the initial state of the block's lanes into (N, kLanes) layout.
MAMBA_INLINE void LoadBlockState(const SelectiveScanParams& p, int64_t first_row, int count,
                                 float* a, float* h) {
  const int64_t d0 = first_row % p.dim;
  for (int64_t n = 0; n < p.state; ++n) {
    for (int w = 0; w < kLanes; ++w) {
      const bool live = w < count;
      a[n * kLanes + w] = live ? p.A[(d0 + w) * p.state + n] : 0.0f;
      const bool from_input = live && p.initial_state != nullptr;
      h[n * kLanes + w] = from_input ? p.initial_state[(first_row + w) * p.state + n] : 0.0f;
    }
  }
}

template <typename Io>
MAMBA_INLINE void ScanBlocks(const Job& job, int64_t begin, int64_t end, float* a, float* h) {
  const SelectiveScanParams& p = *job.params;
  const BlockLayout& layout = job.layout;
  ChunkBuffers buf;
  for (int64_t block = begin; block < end; ++block) {
    const int64_t b = block / layout.blocks_per_batch;
    const int64_t in_batch = block % layout.blocks_per_batch;
    const int64_t offset = (in_batch % layout.blocks_per_segment) * kLanes;
    const int64_t d0 = (in_batch / layout.blocks_per_segment) * layout.segment + offset;
    const int count = static_cast<int>(std::min<int64_t>(kLanes, layout.segment - offset));
    const int64_t first_row = b * p.dim + d0;
    const int64_t plane_b = p.groups_b ? b * p.groups_b + d0 / (p.dim / p.groups_b) : b;
    const int64_t plane_c = p.groups_c ? b * p.groups_c + d0 / (p.dim / p.groups_c) : b;
    const float* b_rows = job.b_panel + plane_b * p.length * p.state;
    const float* c_rows = job.c_panel + plane_c * p.length * p.state;
    LoadBlockState(p, first_row, count, a, h);
    for (int64_t t0 = 0; t0 < p.length; t0 += kChunk) {
      const int64_t steps = std::min(kChunk, p.length - t0);
      StageBlock<Io>(p, first_row, count, t0, steps, buf);
      RecurBlock(a, b_rows + t0 * p.state, c_rows + t0 * p.state, p.state, steps, buf, h);
      FinishBlock<Io>(p, first_row, count, t0, steps, buf);
    }
    for (int w = 0; w < count; ++w) {
      for (int64_t n = 0; n < p.state; ++n) {
        p.last_state[(first_row + w) * p.state + n] = h[n * kLanes + w];
      }
    }
  }
}

MAMBA_CPU_CLONES void ScanBlockRange(const Job& job, int64_t begin, int64_t end, float* a, float* h) {
  switch (job.params->dtype) {
    case ScanDType::kFloat32:
      return ScanBlocks<Float32Io>(job, begin, end, a, h);
    case ScanDType::kFloat16:
      return ScanBlocks<Float16Io>(job, begin, end, a, h);
    case ScanDType::kBFloat16:
      return ScanBlocks<BFloat16Io>(job, begin, end, a, h);
  }
}

void RunTask(void* state, size_t task) {
  const Job& job = *static_cast<const Job*>(state);
  const int64_t begin = static_cast<int64_t>(task) * job.blocks_per_task;
  const int64_t end = std::min(job.layout.blocks, begin + job.blocks_per_task);
  float* a = job.scratch + static_cast<int64_t>(task) * 2 * job.params->state * kLanes;
  ScanBlockRange(job, begin, end, a, a + job.params->state * kLanes);
}

// ---- time-major panels of B and C ------------------------------------------------------

// (planes, N, L) in the I/O dtype -> (planes, L, N) in float32.
template <typename Io>
void ToTimeMajor(const void* source, int64_t planes, int64_t state, int64_t length, float* out) {
  using S = typename Io::Storage;
  constexpr int64_t kTile = 64;
  const S* src = static_cast<const S*>(source);
  for (int64_t plane = 0; plane < planes; ++plane) {
    const S* in = src + plane * state * length;
    float* dst = out + plane * state * length;
    for (int64_t t0 = 0; t0 < length; t0 += kTile) {
      const int64_t t1 = std::min(length, t0 + kTile);
      for (int64_t n = 0; n < state; ++n) {
        for (int64_t t = t0; t < t1; ++t) dst[t * state + n] = Io::Load(in[n * length + t]);
      }
    }
  }
}

std::vector<float> TimeMajorPanel(const SelectiveScanParams& p, const void* source, int64_t groups) {
  const int64_t planes = p.batch * std::max<int64_t>(groups, 1);
  std::vector<float> panel(static_cast<size_t>(planes * p.state * p.length));
  switch (p.dtype) {
    case ScanDType::kFloat32:
      ToTimeMajor<Float32Io>(source, planes, p.state, p.length, panel.data());
      break;
    case ScanDType::kFloat16:
      ToTimeMajor<Float16Io>(source, planes, p.state, p.length, panel.data());
      break;
    case ScanDType::kBFloat16:
      ToTimeMajor<BFloat16Io>(source, planes, p.state, p.length, panel.data());
      break;
  }
  return panel;
}

void RunSerially(void*, void (*task)(void*, size_t), size_t count, void* task_state) {
  for (size_t i = 0; i < count; ++i) task(task_state, i);
}

}  // namespace

ParallelFor SerialFor() {
  ParallelFor serial;
  serial.run = RunSerially;
  return serial;
}

void RunSelectiveScanCpu(const SelectiveScanParams& params, const ParallelFor& parallel_for) {
  if (params.batch * params.dim == 0) return;
  const BlockLayout layout = MakeLayout(params);
  const std::vector<float> b_panel = TimeMajorPanel(params, params.B, params.groups_b);
  const std::vector<float> c_panel = TimeMajorPanel(params, params.C, params.groups_c);
  const int64_t updates_per_block = std::max<int64_t>(1, params.length * params.state * kLanes);
  int64_t per_task = std::max<int64_t>(1, kMinUpdatesPerTask / updates_per_block);
  per_task = std::max(per_task, (layout.blocks + kMaxTasks - 1) / kMaxTasks);
  const int64_t tasks = (layout.blocks + per_task - 1) / per_task;
  std::vector<float> scratch(static_cast<size_t>(tasks * 2 * params.state * kLanes));
  const Job job{&params, layout, b_panel.data(), c_panel.data(), scratch.data(), per_task};
  parallel_for.run(parallel_for.runner_state, RunTask, static_cast<size_t>(tasks), const_cast<Job*>(&job));
}

}  // namespace mamba_export_ops
