// The CPU selective scan.
//
// Where the time goes: every step of every channel needs N exponentials
// exp(dt * A[d, n]). The scan therefore runs kLanes channels side by side, one channel
// per vector lane: each state update is a vector operation over channels, with no
// horizontal sums (y_t = <C_t, h_t> accumulates lane-wise over n) and N independent
// dependency chains per step. Channels of a block share their batch and their groups
// of B and C, so B[n, t] and C[n, t] are the same for every lane.
//
// B and C arrive as (..., N, L), n strided by L, or channels last as (B, L, (G,) N);
// either way they are copied once into time-major float32 panels (..., L, N). The
// sequences are read in place in either layout (channels last: the lanes of a block
// are neighbours in memory). Those panels (the size of B and C) and the per-block
// states (the size of last_state) are the only scratch memory; nothing of size
// B * D * L * N exists.
//
// Short sequences (decode) take the row path of cpu_rows.h instead, where staging the
// blocks would cost more than the few steps of recurrence.
//
// The projected delta (delta_weight given, layout 1) is computed first into a float32
// (B, L, D) buffer, which the scan then reads in place of delta (params.delta_float32):
// one more buffer the size of y in float32, and the plain path is untouched but for one
// branch per step where delta is loaded.
#include "selective_scan/cpu.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/cpu_dispatch.h"
#include "common/fast_math.h"
#include "common/half.h"
#include "mamba_export_ops/contract.h"
#include "selective_scan/cpu_layout.h"
#include "selective_scan/cpu_rows.h"

// The block loops are compiled for AVX-512 and AVX2+FMA as well as baseline x86-64
// (MAMBA_CPU_CLONES, common/cpu_dispatch.h).

namespace mamba_export_ops {
namespace {

constexpr int kLanes = 16;       // channels per block: one 512-bit or two 256-bit vectors
constexpr int64_t kChunk = 64;   // time steps staged at once: 3 x 4 KiB of block buffers
constexpr int64_t kMinUpdatesPerTask = 1 << 16;  // lane-state updates that pay for a task
constexpr int64_t kMaxTasks = 1024;
constexpr int64_t kPrefetchSteps = 16;  // channels last: steps ahead to prefetch

struct Job {
  const SelectiveScanParams* params;
  BlockLayout layout;
  const float* b_panel;  // (batch, groups_b or 1, L, N)
  const float* c_panel;  // (batch, groups_c or 1, L, N)
  float* scratch;        // per task: a and h, N x kLanes each, so tasks allocate nothing
  int64_t blocks_per_task;
};

// Buffers of one chunk of one block. Channels first, one row per lane,
// value[lane * kChunk + t]: staging and finishing run along time (contiguous,
// vectorised), and the recurrence reads and writes across lanes once per step, which
// its N state updates per step amortise. Channels last, one row per step,
// value[t * kLanes + lane]: staging and finishing run across the lanes, which are
// neighbours in memory in every step.
struct ChunkBuffers {
  alignas(64) float dt[kLanes * kChunk];
  alignas(64) float dtu[kLanes * kChunk];
  alignas(64) float y[kLanes * kChunk];
};

template <bool kChannelsLast>
MAMBA_INLINE int64_t BufferAt(int w, int64_t t) {
  return kChannelsLast ? t * kLanes + w : w * kChunk + t;
}

// dt = softplus?(delta + bias) and dt * u along time for one channel (row), channels first
// (delta in T: the projected form, whose delta is float32, is channels last only).
template <typename Io>
MAMBA_INLINE void StageRow(const SelectiveScanParams& p, int64_t row, int64_t t0, int64_t steps,
                           float* __restrict dt, float* __restrict dtu) {
  using S = typename Io::Storage;
  const int64_t start = SequenceRowOffset(p, row) + t0;
  const S* u = static_cast<const S*>(p.u) + start;
  const S* delta = static_cast<const S*>(p.delta) + start;
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

// delta + bias of `count` lanes of one step at element `at`, from delta in T or, for the
// projected form, in float32.
template <typename Io>
MAMBA_INLINE void LoadDeltaLanes(const SelectiveScanParams& p, int64_t at, int count, const float* __restrict bias,
                                 float* __restrict dt) {
  if (p.delta_float32) {
    const float* delta = static_cast<const float*>(p.delta) + at;
    for (int w = 0; w < count; ++w) dt[w] = delta[w] + bias[w];
  } else {
    const typename Io::Storage* delta = static_cast<const typename Io::Storage*>(p.delta) + at;
    for (int w = 0; w < count; ++w) dt[w] = Io::Load(delta[w]) + bias[w];
  }
}

// The same for all lanes of a block, channels last: step by step across the lanes.
// Lanes past `count` get dt = 0 and dt * u = 0.
template <typename Io>
MAMBA_INLINE void StageStepsLast(const SelectiveScanParams& p, int64_t first_row, int count, int64_t t0,
                                 int64_t steps, ChunkBuffers& buf) {
  using S = typename Io::Storage;
  const int64_t d0 = first_row % p.dim;
  alignas(64) float bias[kLanes] = {};
  if (p.delta_bias) {
    for (int w = 0; w < count; ++w) bias[w] = p.delta_bias[d0 + w];
  }
  const int64_t start = SequenceRowOffset(p, first_row) + t0 * p.seq.time;
  const int64_t delta_bytes = p.delta_float32 ? sizeof(float) : sizeof(S);
  for (int64_t t = 0; t < steps; ++t) {
    const int64_t at = start + t * p.seq.time;
    const S* u = static_cast<const S*>(p.u) + at;
    float* __restrict dt = buf.dt + t * kLanes;
    float* __restrict dtu = buf.dtu + t * kLanes;
    // Each step's lanes are one cache line a whole row (D values) away from the last:
    // ask for the lines a few steps ahead, which the hardware prefetcher does not.
    __builtin_prefetch(u + kPrefetchSteps * p.seq.time);
    __builtin_prefetch(static_cast<const char*>(p.delta) + (at + kPrefetchSteps * p.seq.time) * delta_bytes);
    // Whole blocks run all kLanes lanes with a compile-time trip count, so the loops
    // vectorise; a short last block of a group masks its spare lanes afterwards.
    if (count == kLanes) {
      LoadDeltaLanes<Io>(p, at, kLanes, bias, dt);
      if (p.delta_softplus) {
        for (int w = 0; w < kLanes; ++w) dt[w] = FastSoftplus(dt[w], kSoftplusThreshold);
      }
      for (int w = 0; w < kLanes; ++w) dtu[w] = dt[w] * Io::Load(u[w]);
      continue;
    }
    LoadDeltaLanes<Io>(p, at, count, bias, dt);
    for (int w = 0; w < count; ++w) {
      dt[w] = p.delta_softplus ? FastSoftplus(dt[w], kSoftplusThreshold) : dt[w];
      dtu[w] = dt[w] * Io::Load(u[w]);
    }
    for (int w = count; w < kLanes; ++w) dt[w] = dtu[w] = 0.0f;
  }
}

// The lanes of a block: lane w is channel d0 + w; lanes past `count` are padding with
// dt = 0, so exp(0) = 1 keeps their zero state at zero.
template <typename Io, bool kChannelsLast>
MAMBA_INLINE void StageBlock(const SelectiveScanParams& p, int64_t first_row, int count, int64_t t0,
                             int64_t steps, ChunkBuffers& buf) {
  if (kChannelsLast) return StageStepsLast<Io>(p, first_row, count, t0, steps, buf);
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
template <bool kChannelsLast>
MAMBA_INLINE void RecurBlock(const float* __restrict a, const float* __restrict b,
                             const float* __restrict c, int64_t state, int64_t steps,
                             ChunkBuffers& __restrict buf, float* __restrict h) {
  for (int64_t t = 0; t < steps; ++t) {
    const float* __restrict bt = b + t * state;
    const float* __restrict ct = c + t * state;
    float dt[kLanes], dtu[kLanes], acc[kLanes];
    for (int w = 0; w < kLanes; ++w) {
      dt[w] = buf.dt[BufferAt<kChannelsLast>(w, t)];
      dtu[w] = buf.dtu[BufferAt<kChannelsLast>(w, t)];
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
    for (int w = 0; w < kLanes; ++w) buf.y[BufferAt<kChannelsLast>(w, t)] = acc[w];
  }
}

// y = (scan + D * u) * silu(z) along time for one channel, stored in the I/O dtype
// (channels first).
template <typename Io>
MAMBA_INLINE void FinishRow(const SelectiveScanParams& p, int64_t row, int64_t t0, int64_t steps,
                            const float* scan) {
  using S = typename Io::Storage;
  const int64_t start = SequenceRowOffset(p, row) + t0;
  const S* u = static_cast<const S*>(p.u) + start;
  S* y = static_cast<S*>(p.y) + start;
  const float skip = p.D ? p.D[row % p.dim] : 0.0f;
  const bool has_skip = p.D != nullptr;
  if (p.z) {
    // Channels first z is read whole (offsets need layout 1): its steps are contiguous too.
    const S* z = static_cast<const S*>(p.z) + GateRowOffset(p, row) + t0;
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

// The same for all lanes of a block, channels last: step by step across the lanes.
template <typename Io>
MAMBA_INLINE void FinishStepsLast(const SelectiveScanParams& p, int64_t first_row, int count, int64_t t0,
                                  int64_t steps, const ChunkBuffers& buf) {
  using S = typename Io::Storage;
  const int64_t d0 = first_row % p.dim;
  alignas(64) float skip[kLanes] = {};
  if (p.D) {
    for (int w = 0; w < count; ++w) skip[w] = p.D[d0 + w];
  }
  const int64_t start = SequenceRowOffset(p, first_row) + t0 * p.seq.time;
  // z has its own strides: it may be the second half of a packed (B, L, W) tensor.
  const int64_t z_start = GateRowOffset(p, first_row) + t0 * p.z_seq.time;
  for (int64_t t = 0; t < steps; ++t) {
    const int64_t at = start + t * p.seq.time;
    const int64_t z_at = z_start + t * p.z_seq.time;
    const S* u = static_cast<const S*>(p.u) + at;
    S* y = static_cast<S*>(p.y) + at;
    const float* scan = buf.y + t * kLanes;
    __builtin_prefetch(u + kPrefetchSteps * p.seq.time);
    __builtin_prefetch(y + kPrefetchSteps * p.seq.time, 1);
    if (p.z) __builtin_prefetch(static_cast<const S*>(p.z) + z_at + kPrefetchSteps * p.z_seq.time);
    if (p.z && count == kLanes) {
      const S* z = static_cast<const S*>(p.z) + z_at;
      alignas(64) float out[kLanes];
      for (int w = 0; w < kLanes; ++w) out[w] = (scan[w] + skip[w] * Io::Load(u[w])) * FastSilu(Io::Load(z[w]));
      for (int w = 0; w < kLanes; ++w) y[w] = Io::Store(out[w]);
    } else if (p.z) {
      const S* z = static_cast<const S*>(p.z) + z_at;
      for (int w = 0; w < count; ++w) {
        y[w] = Io::Store((scan[w] + skip[w] * Io::Load(u[w])) * FastSilu(Io::Load(z[w])));
      }
    } else {
      for (int w = 0; w < count; ++w) y[w] = Io::Store(scan[w] + skip[w] * Io::Load(u[w]));
    }
  }
}

template <typename Io, bool kChannelsLast>
MAMBA_INLINE void FinishBlock(const SelectiveScanParams& p, int64_t first_row, int count, int64_t t0,
                              int64_t steps, ChunkBuffers& buf) {
  if (kChannelsLast) return FinishStepsLast<Io>(p, first_row, count, t0, steps, buf);
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

template <typename Io, bool kChannelsLast>
MAMBA_INLINE void ScanBlocks(const Job& job, int64_t begin, int64_t end, float* a, float* h) {
  const SelectiveScanParams& p = *job.params;
  const BlockLayout& layout = job.layout;
  ChunkBuffers buf;
  for (int64_t block = begin; block < end; ++block) {
    const ChannelBlock at = BlockAt(p, layout, block, job.b_panel, job.c_panel);
    const int64_t first_row = at.row0;
    const int count = static_cast<int>(at.count);
    const float* b_rows = at.b_panel;
    const float* c_rows = at.c_panel;
    LoadBlockState(p, first_row, count, a, h);
    for (int64_t t0 = 0; t0 < p.length; t0 += kChunk) {
      const int64_t steps = std::min(kChunk, p.length - t0);
      StageBlock<Io, kChannelsLast>(p, first_row, count, t0, steps, buf);
      RecurBlock<kChannelsLast>(a, b_rows + t0 * p.state, c_rows + t0 * p.state, p.state, steps, buf, h);
      FinishBlock<Io, kChannelsLast>(p, first_row, count, t0, steps, buf);
    }
    for (int w = 0; w < count; ++w) {
      for (int64_t n = 0; n < p.state; ++n) {
        p.last_state[(first_row + w) * p.state + n] = h[n * kLanes + w];
      }
    }
  }
}

template <bool kChannelsLast>
MAMBA_INLINE void ScanBlockRangeIn(const Job& job, int64_t begin, int64_t end, float* a, float* h) {
  switch (job.params->dtype) {
    case ScanDType::kFloat32:
      return ScanBlocks<Float32Io, kChannelsLast>(job, begin, end, a, h);
    case ScanDType::kFloat16:
      return ScanBlocks<Float16Io, kChannelsLast>(job, begin, end, a, h);
    case ScanDType::kBFloat16:
      return ScanBlocks<BFloat16Io, kChannelsLast>(job, begin, end, a, h);
  }
}

MAMBA_CPU_CLONES void ScanBlockRange(const Job& job, int64_t begin, int64_t end, float* a, float* h) {
  if (job.params->layout == kLayoutChannelsLast) return ScanBlockRangeIn<true>(job, begin, end, a, h);
  ScanBlockRangeIn<false>(job, begin, end, a, h);
}

void RunTask(void* state, size_t task) {
  const Job& job = *static_cast<const Job*>(state);
  const int64_t begin = static_cast<int64_t>(task) * job.blocks_per_task;
  const int64_t end = std::min(job.layout.blocks, begin + job.blocks_per_task);
  float* a = job.scratch + static_cast<int64_t>(task) * 2 * job.params->state * kLanes;
  ScanBlockRange(job, begin, end, a, a + job.params->state * kLanes);
}

// ---- the row path (short sequences) ---------------------------------------------------

MAMBA_CPU_CLONES void ScanChunksOf(const Job& job, int64_t begin, int64_t end) {
  const SelectiveScanParams& p = *job.params;
  for (int64_t index = begin; index < end; ++index) {
    const ChannelBlock chunk = BlockAt(p, job.layout, index, job.b_panel, job.c_panel);
    switch (p.dtype) {
      case ScanDType::kFloat32:
        rows::ScanChunk<Float32Io>(p, chunk);
        break;
      case ScanDType::kFloat16:
        rows::ScanChunk<Float16Io>(p, chunk);
        break;
      case ScanDType::kBFloat16:
        rows::ScanChunk<BFloat16Io>(p, chunk);
        break;
    }
  }
}

void RunChunkTask(void* state, size_t task) {
  const Job& job = *static_cast<const Job*>(state);
  const int64_t begin = static_cast<int64_t>(task) * job.blocks_per_task;
  ScanChunksOf(job, begin, std::min(job.layout.blocks, begin + job.blocks_per_task));
}

// Tasks of at least kMinUpdatesPerTask state updates, at most kMaxTasks of them.
int64_t ItemsPerTask(int64_t items, int64_t updates_per_item) {
  const int64_t per_task = std::max<int64_t>(1, kMinUpdatesPerTask / std::max<int64_t>(1, updates_per_item));
  return std::max(per_task, (items + kMaxTasks - 1) / kMaxTasks);
}

// A single task runs on the calling thread: handing it to a thread pool costs more
// than a decode step's scan.
void RunTasks(const ParallelFor& parallel_for, void (*task)(void*, size_t), int64_t tasks, void* job) {
  if (tasks == 1) return task(job, 0);
  parallel_for.run(parallel_for.runner_state, task, static_cast<size_t>(tasks), job);
}

// The longest sequence the row path of cpu_rows.h takes: up to it the row path is the
// faster one for the clone the loader picked. Measured per call with D = 1536, N = 16,
// one thread (row against block path): x86-64-v4 26 against 72 us at L = 1, 89
// against 123 at L = 3, 149 against 179 at L = 5, 236 against 139 at L = 8; x86-64-v3
// 43 against 66 at L = 1, 92 against 97 at L = 2, 137 against 128 at L = 3; baseline
// x86-64 (SSE2) 190 against 108 at L = 1. Builds without the clones keep the block path.
int64_t RowPathMaxLength() {
#if defined(MAMBA_EXPORT_CPU_DISPATCH) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
  static const int64_t limit = [] {
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
      return 4;
    }
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 2 : 0;
  }();
  return limit;
#else
  return 0;
#endif
}

// ---- the projected delta -----------------------------------------------------------------

struct Projection {
  const SelectiveScanParams* params;
  float* out;             // (B, L, D) float32
  int64_t steps_per_task;  // of the B * L steps
};

// out[b, l, :] = delta_weight @ x_dt[b, l, :], each sum over r in float32 from the T-typed x_dt.
template <typename Io>
void ProjectSteps(const Projection& job, int64_t begin, int64_t end) {
  const SelectiveScanParams& p = *job.params;
  const int64_t rank = p.rank;
  std::vector<float> x(static_cast<size_t>(rank));
  for (int64_t step = begin; step < end; ++step) {
    const auto* x_dt = static_cast<const typename Io::Storage*>(p.delta) +
                       ProjectedDeltaRowOffset(p, step / p.length, step % p.length);
    for (int64_t r = 0; r < rank; ++r) x[r] = Io::Load(x_dt[r]);
    float* out = job.out + step * p.dim;
    for (int64_t d = 0; d < p.dim; ++d) {
      const float* w = p.delta_weight + d * rank;
      float sum = 0.0f;
      for (int64_t r = 0; r < rank; ++r) sum += w[r] * x[r];
      out[d] = sum;
    }
  }
}

void RunProjectionTask(void* state, size_t task) {
  const Projection& job = *static_cast<const Projection*>(state);
  const int64_t steps = job.params->batch * job.params->length;
  const int64_t begin = static_cast<int64_t>(task) * job.steps_per_task;
  const int64_t end = std::min(steps, begin + job.steps_per_task);
  switch (job.params->dtype) {
    case ScanDType::kFloat32:
      return ProjectSteps<Float32Io>(job, begin, end);
    case ScanDType::kFloat16:
      return ProjectSteps<Float16Io>(job, begin, end);
    case ScanDType::kBFloat16:
      return ProjectSteps<BFloat16Io>(job, begin, end);
  }
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
  if (params.delta_weight != nullptr) {
    // The projected form: the plain scan on a float32 delta computed first.
    std::vector<float> projected(static_cast<size_t>(params.batch * params.length * params.dim));
    const int64_t steps = params.batch * params.length;
    const int64_t per_task = ItemsPerTask(steps, params.dim * std::max<int64_t>(1, params.rank));
    Projection job{&params, projected.data(), per_task};
    if (steps > 0) RunTasks(parallel_for, RunProjectionTask, (steps + per_task - 1) / per_task, &job);
    SelectiveScanParams plain = params;
    plain.delta = projected.data();
    plain.delta_weight = nullptr;
    plain.delta_float32 = true;
    return RunSelectiveScanCpu(plain, parallel_for);
  }
  const std::vector<float> b_panel = TimeMajorPanel(params, params.B, params.proj_b, params.groups_b);
  const std::vector<float> c_panel = TimeMajorPanel(params, params.C, params.proj_c, params.groups_c);
  const bool short_rows = params.length <= RowPathMaxLength() && params.state <= rows::kMaxState;
  const BlockLayout layout = MakeLayout(params, short_rows ? rows::kRowChunk : kLanes);
  const int64_t per_task = ItemsPerTask(layout.blocks, params.length * params.state * layout.width);
  if (short_rows) {
    Job job{&params, layout, b_panel.data(), c_panel.data(), nullptr, per_task};
    return RunTasks(parallel_for, RunChunkTask, (layout.blocks + per_task - 1) / per_task, &job);
  }
  const int64_t tasks = (layout.blocks + per_task - 1) / per_task;
  std::vector<float> scratch(static_cast<size_t>(tasks * 2 * params.state * kLanes));
  Job job{&params, layout, b_panel.data(), c_panel.data(), scratch.data(), per_task};
  RunTasks(parallel_for, RunTask, tasks, &job);
}

}  // namespace mamba_export_ops
