// The CPU selective scan: one pass over time per (batch, channel) row, rows spread
// over the caller's threads.
//
// Where the time goes: every step of every row needs N exponentials exp(dt * A[d, n]),
// so the loop over n is written to vectorise (a polynomial exp, no libm calls, the
// state kept in registers when N is a compile-time size). B and C arrive as
// (..., N, L), with n strided by L; they are copied once into time-major float32
// panels (..., L, N) so each step reads N contiguous values. Those panels are the only
// scratch memory, the size of B and C; nothing of size B * D * L * N exists.
#include "selective_scan/cpu.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/half.h"
#include "mamba_export_ops/contract.h"

#if defined(__GNUC__)
#define MAMBA_INLINE inline __attribute__((always_inline))
#else
#define MAMBA_INLINE inline
#endif

// Compile the row loop for AVX-512 and AVX2+FMA machines as well as for baseline
// x86-64; the loader picks the best one the CPU supports.
#if defined(MAMBA_EXPORT_CPU_DISPATCH) && defined(__GNUC__) && defined(__x86_64__)
#define MAMBA_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MAMBA_CPU_CLONES
#endif

namespace mamba_export_ops {
namespace {

// Time steps staged per pass over a row: dt, dt * u and y of a chunk stay in L1.
constexpr int64_t kChunk = 256;
// Rows of one parallel task are chosen so a task does at least this many state updates.
constexpr int64_t kMinUpdatesPerTask = 1 << 15;
constexpr int64_t kMaxTasks = 512;

// ---- element types --------------------------------------------------------------

struct Float32Io {
  using Storage = float;
  static MAMBA_INLINE float Load(Storage value) { return value; }
  static MAMBA_INLINE Storage Store(float value) { return value; }
};

struct Float16Io {
  using Storage = uint16_t;
  static MAMBA_INLINE float Load(Storage value) { return HalfToFloat(value); }
  static MAMBA_INLINE Storage Store(float value) { return FloatToHalf(value); }
};

struct BFloat16Io {
  using Storage = uint16_t;
  static MAMBA_INLINE float Load(Storage value) { return BFloat16ToFloat(value); }
  static MAMBA_INLINE Storage Store(float value) { return FloatToBFloat16(value); }
};

// ---- vectorisable math ------------------------------------------------------------

// exp(x) to about 2 ulp for every float x, without branches so loops over it vectorise.
// x = n ln2 + r with |r| <= ln2 / 2; exp(r) by its Taylor series to r^7 (truncation
// below 1e-8 relative); 2^n applied as two normal powers of two so n may reach
// -149..128 (subnormal and largest results come out right).
MAMBA_INLINE float Exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // few mantissa bits: n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  constexpr float kMaxArg = 88.72283935546875f;
  constexpr float kMinArg = -103.972076416015625f;
  const float xc = std::min(std::max(x, kMinArg), kMaxArg);
  const float n = (xc * kLog2e + kRoundMagic) - kRoundMagic;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t half = ni >> 1;
  const float scale_a = BitsToFloat(static_cast<uint32_t>(half + 127) << 23);
  const float scale_b = BitsToFloat(static_cast<uint32_t>(ni - half + 127) << 23);
  float result = p * scale_a * scale_b;
  result = x < kMinArg ? 0.0f : result;
  result = x > kMaxArg ? std::numeric_limits<float>::infinity() : result;
  return result;
}

// log1p(e) for e in [0, 1], a few ulp. log(1 + e) by the atanh series of the
// mantissa, then scaled by e / ((1 + e) - 1) to restore the bits of e lost in 1 + e.
MAMBA_INLINE float Log1pUnit(float e) {
  constexpr float kLn2 = 0.693147180559945309f;
  constexpr float kSqrt2 = 1.41421356237309505f;
  const float w = 1.0f + e;
  const bool above = w > kSqrt2;
  const float m = above ? w * 0.5f : w;
  const float s = (m - 1.0f) / (m + 1.0f);  // |s| <= 0.172
  const float s2 = s * s;
  float series = 1.0f / 9.0f;
  series = series * s2 + 1.0f / 7.0f;
  series = series * s2 + 1.0f / 5.0f;
  series = series * s2 + 1.0f / 3.0f;
  series = series * s2 + 1.0f;
  const float log_w = (above ? kLn2 : 0.0f) + 2.0f * s * series;
  return w == 1.0f ? e : log_w * (e / (w - 1.0f));
}

// torch's softplus (beta 1, threshold 20): x above the threshold, else log(1 + e^x),
// computed as max(x, 0) + log1p(e^-|x|) so it neither overflows nor cancels.
MAMBA_INLINE float Softplus(float x) {
  const float smooth = std::max(x, 0.0f) + Log1pUnit(Exp(-std::fabs(x)));
  return x > kSoftplusThreshold ? x : smooth;
}

MAMBA_INLINE float Silu(float x) { return x / (1.0f + Exp(-x)); }

// ---- the scan -----------------------------------------------------------------------

struct RowJob {
  const SelectiveScanParams* params;
  const float* b_panel;  // (batch, groups_b or 1, L, N)
  const float* c_panel;  // (batch, groups_c or 1, L, N)
  float* states;         // one state vector of N floats per task: tasks allocate nothing
  int64_t rows;          // batch * dim
  int64_t rows_per_task;
};

// Index of the (batch, group) plane of B or C that channel d of batch b reads.
MAMBA_INLINE int64_t PlaneOf(int64_t b, int64_t d, int64_t dim, int64_t groups) {
  if (groups == 0) return b;
  return b * groups + d / (dim / groups);
}

template <typename Io>
MAMBA_INLINE void StageTimeStep(const SelectiveScanParams& p, int64_t row, int64_t t0, int64_t steps,
                                float* dt, float* dtu) {
  using S = typename Io::Storage;
  const S* u = static_cast<const S*>(p.u) + row * p.length + t0;
  const S* delta = static_cast<const S*>(p.delta) + row * p.length + t0;
  const float bias = p.delta_bias ? p.delta_bias[row % p.dim] : 0.0f;
  if (p.delta_softplus) {
    for (int64_t t = 0; t < steps; ++t) {
      const float value = Softplus(Io::Load(delta[t]) + bias);
      dt[t] = value;
      dtu[t] = value * Io::Load(u[t]);
    }
  } else {
    for (int64_t t = 0; t < steps; ++t) {
      const float value = Io::Load(delta[t]) + bias;
      dt[t] = value;
      dtu[t] = value * Io::Load(u[t]);
    }
  }
}

// h = exp(dt * a) * h + dt * u * B_t ; y_t = <C_t, h>, for `steps` steps.
// kN > 0 fixes the state size at compile time so h lives in vector registers.
template <int kN>
MAMBA_INLINE void Recur(const float* a, const float* b, const float* c, const float* dt,
                        const float* dtu, int64_t steps, int64_t state, float* h, float* y) {
  if constexpr (kN > 0) {
    float hl[kN], al[kN];
    for (int n = 0; n < kN; ++n) {
      hl[n] = h[n];
      al[n] = a[n];
    }
    for (int64_t t = 0; t < steps; ++t) {
      const float* bt = b + t * kN;
      const float* ct = c + t * kN;
      const float step = dt[t], input = dtu[t];
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int n = 0; n < kN; ++n) {
        const float next = Exp(step * al[n]) * hl[n] + input * bt[n];
        hl[n] = next;
        acc += next * ct[n];
      }
      y[t] = acc;
    }
    for (int n = 0; n < kN; ++n) h[n] = hl[n];
  } else {
    for (int64_t t = 0; t < steps; ++t) {
      const float* bt = b + t * state;
      const float* ct = c + t * state;
      const float step = dt[t], input = dtu[t];
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int64_t n = 0; n < state; ++n) {
        const float next = Exp(step * a[n]) * h[n] + input * bt[n];
        h[n] = next;
        acc += next * ct[n];
      }
      y[t] = acc;
    }
  }
}

template <typename Io>
MAMBA_INLINE void FinishOutput(const SelectiveScanParams& p, int64_t row, int64_t t0, int64_t steps,
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
      y[t] = Io::Store(out * Silu(Io::Load(z[t])));
    }
  } else {
    for (int64_t t = 0; t < steps; ++t) {
      y[t] = Io::Store(has_skip ? scan[t] + skip * Io::Load(u[t]) : scan[t]);
    }
  }
}

template <typename Io, int kN>
MAMBA_INLINE void ScanRowsTyped(const RowJob& job, int64_t begin, int64_t end, float* h) {
  const SelectiveScanParams& p = *job.params;
  const int64_t state = kN > 0 ? kN : p.state;
  alignas(64) float dt[kChunk], dtu[kChunk], scan[kChunk];
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / p.dim, d = row % p.dim;
    const float* b_rows = job.b_panel + PlaneOf(b, d, p.dim, p.groups_b) * p.length * state;
    const float* c_rows = job.c_panel + PlaneOf(b, d, p.dim, p.groups_c) * p.length * state;
    if (p.initial_state) {
      std::copy_n(p.initial_state + row * state, state, h);
    } else {
      std::fill_n(h, state, 0.0f);
    }
    for (int64_t t0 = 0; t0 < p.length; t0 += kChunk) {
      const int64_t steps = std::min(kChunk, p.length - t0);
      StageTimeStep<Io>(p, row, t0, steps, dt, dtu);
      Recur<kN>(p.A + d * state, b_rows + t0 * state, c_rows + t0 * state, dt, dtu, steps, state,
                h, scan);
      FinishOutput<Io>(p, row, t0, steps, scan);
    }
    std::copy_n(h, state, p.last_state + row * state);
  }
}

template <typename Io>
MAMBA_INLINE void ScanRowsForState(const RowJob& job, int64_t begin, int64_t end, float* h) {
  switch (job.params->state) {
    case 8:
      return ScanRowsTyped<Io, 8>(job, begin, end, h);
    case 16:
      return ScanRowsTyped<Io, 16>(job, begin, end, h);
    case 32:
      return ScanRowsTyped<Io, 32>(job, begin, end, h);
    default:
      return ScanRowsTyped<Io, 0>(job, begin, end, h);
  }
}

MAMBA_CPU_CLONES void ScanRows(const RowJob& job, int64_t begin, int64_t end, float* h) {
  switch (job.params->dtype) {
    case ScanDType::kFloat32:
      return ScanRowsForState<Float32Io>(job, begin, end, h);
    case ScanDType::kFloat16:
      return ScanRowsForState<Float16Io>(job, begin, end, h);
    case ScanDType::kBFloat16:
      return ScanRowsForState<BFloat16Io>(job, begin, end, h);
  }
}

void RunRowTask(void* state, size_t task) {
  const RowJob& job = *static_cast<const RowJob*>(state);
  const int64_t begin = static_cast<int64_t>(task) * job.rows_per_task;
  float* h = job.states + static_cast<int64_t>(task) * job.params->state;
  ScanRows(job, begin, std::min(job.rows, begin + job.rows_per_task), h);
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
  const int64_t rows = params.batch * params.dim;
  if (rows == 0) return;
  const std::vector<float> b_panel = TimeMajorPanel(params, params.B, params.groups_b);
  const std::vector<float> c_panel = TimeMajorPanel(params, params.C, params.groups_c);
  const int64_t updates_per_row = std::max<int64_t>(1, params.length * std::max<int64_t>(params.state, 1));
  int64_t rows_per_task = std::max<int64_t>(1, kMinUpdatesPerTask / updates_per_row);
  rows_per_task = std::max(rows_per_task, (rows + kMaxTasks - 1) / kMaxTasks);
  const int64_t tasks = (rows + rows_per_task - 1) / rows_per_task;
  std::vector<float> states(static_cast<size_t>(tasks * params.state));
  const RowJob job{&params, b_panel.data(), c_panel.data(), states.data(), rows, rows_per_task};
  parallel_for.run(parallel_for.runner_state, RunRowTask, static_cast<size_t>(tasks),
                   const_cast<RowJob*>(&job));
}

}  // namespace mamba_export_ops
