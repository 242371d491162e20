// The CPU scan of short sequences (decode: one or a few tokens per call).
//
// With few time steps the block path of cpu.cc spends its time on staging, not on the
// recurrence: it gathers A and the state of 16 channels into (N, lanes) order, moves
// dt, u and y through lane buffers and scatters the state back, for one step of work.
// Here each (batch, channel) row runs its recurrence with its N states as the vector:
// A[d], the state and last_state are contiguous rows of (D, N) and (B, D, N), so
// nothing is gathered or scattered, and the state lives in last_state while it runs.
// Only the per-channel scalars (softplus of dt, the D skip, the silu gate) are staged,
// across 64 channels at a time, so that they vectorise over channels.
//
// The arithmetic per step is the block path's (same FastExp, FastSoftplus, FastSilu
// and update formula); only the order of the N products summed into y_t differs
// (16 partial sums folded in halves here, one chain per lane there), a float32
// rounding difference. Included by cpu.cc only, so that these templates are compiled
// into its per-CPU clones.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/fast_math.h"
#include "common/half.h"
#include "mamba_export_ops/contract.h"
#include "selective_scan/cpu_layout.h"
#include "selective_scan/params.h"

namespace mamba_export_ops {
namespace rows {

// The row path keeps the N products of a step on the stack.
constexpr int64_t kMaxState = 256;

// GCC/Clang generic vectors, lowered to whatever the target has: the horizontal sum is
// written as folds of halves, because the vectoriser leaves a reduction's last 16 lanes
// to a serial chain of scalar adds.
typedef float Vec16 __attribute__((vector_size(64)));
typedef float Vec8 __attribute__((vector_size(32)));
typedef float Vec4 __attribute__((vector_size(16)));

// x[0] + ... + x[count - 1], summed as 16 running partial sums folded in halves.
MAMBA_INLINE float Sum(const float* x, int64_t count) {
  Vec16 acc = {};
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    Vec16 v;
    std::memcpy(&v, x + i, sizeof v);
    acc += v;
  }
  float tail = 0.0f;
  for (; i < count; ++i) tail += x[i];
  Vec8 low8, high8;
  std::memcpy(&low8, &acc, sizeof low8);
  std::memcpy(&high8, reinterpret_cast<const char*>(&acc) + sizeof low8, sizeof high8);
  const Vec8 s8 = low8 + high8;
  Vec4 low4, high4;
  std::memcpy(&low4, &s8, sizeof low4);
  std::memcpy(&high4, reinterpret_cast<const char*>(&s8) + sizeof low4, sizeof high4);
  const Vec4 s4 = low4 + high4;
  return ((s4[0] + s4[2]) + (s4[1] + s4[3])) + tail;
}

// One step of one row: h = exp(dt * A) * h + dt * u * B_t, returns y_t = <C_t, h>.
MAMBA_INLINE float StepRow(const float* __restrict a, const float* __restrict bt,
                           const float* __restrict ct, int64_t state, float dt, float dtu,
                           float* __restrict h) {
  alignas(64) float products[kMaxState];
  for (int64_t n = 0; n < state; ++n) {
    const float next = FastExp(dt * a[n]) * h[n] + dtu * bt[n];
    h[n] = next;
    products[n] = next * ct[n];
  }
  return Sum(products, state);
}

// Channels scanned together: their dt, dt * u and y are staged across channels (one
// vector operation for 16 channels of softplus or silu), and their states (64 x N floats)
// stay in the L1 cache between steps.
constexpr int64_t kRowChunk = 64;

// dt = softplus?(delta + bias) and dt * u of step t for the chunk's rows.
template <typename Io>
MAMBA_INLINE void StageStep(const SelectiveScanParams& p, const ChannelBlock& chunk, int64_t t,
                            float* __restrict dt, float* __restrict dtu) {
  using S = typename Io::Storage;
  const int64_t offset = SequenceRowOffset(p, chunk.row0) + t * p.seq.time;
  const S* u = static_cast<const S*>(p.u) + offset;
  const int64_t d0 = chunk.row0 % p.dim, stride = p.seq.dim;
  // delta in T, or float32 for the projected form (cpu.cc).
  if (p.delta_float32) {
    const float* delta = static_cast<const float*>(p.delta) + offset;
    for (int64_t k = 0; k < chunk.count; ++k) dt[k] = delta[k * stride];
  } else {
    const S* delta = static_cast<const S*>(p.delta) + offset;
    for (int64_t k = 0; k < chunk.count; ++k) dt[k] = Io::Load(delta[k * stride]);
  }
  for (int64_t k = 0; k < chunk.count; ++k) {
    const float x = dt[k] + (p.delta_bias ? p.delta_bias[d0 + k] : 0.0f);
    dt[k] = p.delta_softplus ? FastSoftplus(x, kSoftplusThreshold) : x;
    dtu[k] = dt[k] * Io::Load(u[k * stride]);
  }
}

// y = (scan + D * u) * silu(z) of step t for the chunk's rows.
template <typename Io>
MAMBA_INLINE void FinishStep(const SelectiveScanParams& p, const ChannelBlock& chunk, int64_t t,
                             const float* __restrict scan) {
  using S = typename Io::Storage;
  const int64_t offset = SequenceRowOffset(p, chunk.row0) + t * p.seq.time;
  const int64_t d0 = chunk.row0 % p.dim, stride = p.seq.dim;
  const S* u = static_cast<const S*>(p.u) + offset;
  const S* z = p.z ? static_cast<const S*>(p.z) + GateRowOffset(p, chunk.row0) + t * p.z_seq.time : nullptr;
  S* y = static_cast<S*>(p.y) + offset;
  for (int64_t k = 0; k < chunk.count; ++k) {
    float out = scan[k];
    if (p.D) out += p.D[d0 + k] * Io::Load(u[k * stride]);
    if (z) out *= FastSilu(Io::Load(z[k * p.z_seq.dim]));
    y[k * stride] = Io::Store(out);
  }
}

// All L steps of the chunk; the states run in last_state.
template <typename Io>
MAMBA_INLINE void ScanChunk(const SelectiveScanParams& p, const ChannelBlock& chunk) {
  const int64_t d0 = chunk.row0 % p.dim, n = p.state;
  float* states = p.last_state + chunk.row0 * n;
  if (p.initial_state) {
    std::copy_n(p.initial_state + chunk.row0 * n, chunk.count * n, states);
  } else {
    std::fill_n(states, chunk.count * n, 0.0f);
  }
  alignas(64) float dt[kRowChunk], dtu[kRowChunk], scan[kRowChunk];
  for (int64_t t = 0; t < p.length; ++t) {
    StageStep<Io>(p, chunk, t, dt, dtu);
    const float* bt = chunk.b_panel + t * n;
    const float* ct = chunk.c_panel + t * n;
    for (int64_t k = 0; k < chunk.count; ++k) {
      scan[k] = StepRow(p.A + (d0 + k) * n, bt, ct, n, dt[k], dtu[k], states + k * n);
    }
    FinishStep<Io>(p, chunk, t, scan);
  }
}

}  // namespace rows
}  // namespace mamba_export_ops
