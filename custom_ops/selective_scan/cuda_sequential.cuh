// The sequential scan: the path for decode (L = 1) and other short sequences,
// where batch x channels x state already gives the GPU enough independent work.
//
// A group of P lanes (P a power of two, P <= 32, so a group never straddles a
// warp) owns one (batch, channel); lane k of the group keeps up to
// kStatesPerLane state values in registers and walks the steps one by one. The
// output is the sum over the group's lanes, taken with warp shuffles.
//
// The projected form (delta_weight given): the group's lanes split the R terms of
// delta = delta_weight[d, :] . x_dt[b, t, :] and sum them with the same shuffles, so the
// time step comes from the x_proj output with no separate kernel.
#pragma once

#include "cuda_common.cuh"

namespace mamba_export_ops {
namespace cuda_scan {

constexpr int kSequentialThreads = 256;
constexpr int kStatesPerLane = 4;
// The largest N this path serves: 32 lanes of kStatesPerLane states.
constexpr int64_t kSequentialMaxState = kWarpSize * kStatesPerLane;

// Lanes per (batch, channel): the fewest, as a power of two, that hold N states.
inline int SequentialLanesPerChannel(int64_t state) {
  int lanes = 1;
  while (static_cast<int64_t>(lanes) * kStatesPerLane < state) lanes *= 2;
  return lanes;
}

template <typename T>
__global__ void __launch_bounds__(kSequentialThreads)
    SequentialScanKernel(const SelectiveScanParams p, int log2_lanes) {
  ReleaseNextKernel();
  WaitForPreviousKernel();
  const int64_t thread = static_cast<int64_t>(blockIdx.x) * kSequentialThreads + threadIdx.x;
  const int lanes = 1 << log2_lanes;
  const int64_t channel = thread >> log2_lanes;
  const int slot = static_cast<int>(thread & (lanes - 1));
  // Lanes past the last channel stay to take part in the shuffles.
  const bool active = channel < p.batch * p.dim;
  const int64_t b = active ? channel / p.dim : 0;
  const int64_t d = active ? channel % p.dim : 0;
  const int64_t N = p.state;
  const int64_t L = p.length;
  const int64_t n0 = static_cast<int64_t>(slot) * kStatesPerLane;

  float a2[kStatesPerLane];
  float h[kStatesPerLane];
#pragma unroll
  for (int k = 0; k < kStatesPerLane; ++k) {
    const bool owned = active && n0 + k < N;
    a2[k] = owned ? p.A[d * N + n0 + k] * kLog2e : 0.0f;
    h[k] = (owned && p.initial_state != nullptr) ? p.initial_state[channel * N + n0 + k] : 0.0f;
  }

  // Channels first: a thread's steps are contiguous. Channels last: neighbouring
  // channels (threads) read neighbouring values of each step.
  const int64_t row = b * p.seq.batch + d * p.seq.dim;
  const int64_t step = p.seq.time;
  // z has its own strides: it may be read at an offset of a packed (B, L, W) tensor.
  const int64_t z_row = b * p.z_seq.batch + d * p.z_seq.dim;
  const T* b_rows = static_cast<const T*>(p.B) + ProjectionOffset(p.proj_b, p.groups_b, b, d, p.dim);
  const T* c_rows = static_cast<const T*>(p.C) + ProjectionOffset(p.proj_c, p.groups_c, b, d, p.dim);
  const float bias = (active && p.delta_bias != nullptr) ? p.delta_bias[d] : 0.0f;
  const float skip = (active && p.D != nullptr) ? p.D[d] : 0.0f;

  const float* weight_row = p.delta_weight != nullptr ? p.delta_weight + d * p.rank : nullptr;

  for (int64_t t = 0; t < L; ++t) {
    float u = 0.0f;
    float dt = 0.0f;
    if (weight_row != nullptr) {
      // This lane's share of the R terms; every lane of the group ends with the whole sum.
      float share = 0.0f;
      if (active) {
        const T* x_dt = static_cast<const T*>(p.delta) + ProjectedDeltaRowOffset(p, b, t);
        for (int64_t r = slot; r < p.rank; r += lanes) share = fmaf(__ldg(weight_row + r), ToFloat(x_dt[r]), share);
      }
      for (int offset = lanes / 2; offset > 0; offset /= 2) share += __shfl_xor_sync(kFullMask, share, offset);
      if (active) {
        u = ToFloat(static_cast<const T*>(p.u)[row + t * step]);
        dt = TimeStep(share, bias, p.delta_softplus);
      }
    } else if (active) {
      u = ToFloat(static_cast<const T*>(p.u)[row + t * step]);
      dt = TimeStep(ToFloat(static_cast<const T*>(p.delta)[row + t * step]), bias, p.delta_softplus);
    }
    const float dtu = dt * u;
    float partial = 0.0f;
#pragma unroll
    for (int k = 0; k < kStatesPerLane; ++k) {
      if (active && n0 + k < N) {
        const int64_t n = n0 + k;
        const float bn = ToFloat(b_rows[n * p.proj_b.state + t * p.proj_b.time]);
        const float cn = ToFloat(c_rows[n * p.proj_c.state + t * p.proj_c.time]);
        h[k] = fmaf(FastExp2(dt * a2[k]), h[k], dtu * bn);
        partial = fmaf(cn, h[k], partial);
      }
    }
    for (int offset = lanes / 2; offset > 0; offset /= 2) {
      partial += __shfl_xor_sync(kFullMask, partial, offset);
    }
    if (active && slot == 0) {
      float y = fmaf(skip, u, partial);
      if (p.z != nullptr) y *= Silu(ToFloat(static_cast<const T*>(p.z)[z_row + t * p.z_seq.time]));
      static_cast<T*>(p.y)[row + t * step] = FromFloat<T>(y);
    }
  }
#pragma unroll
  for (int k = 0; k < kStatesPerLane; ++k) {
    if (active && n0 + k < N) p.last_state[channel * N + n0 + k] = h[k];
  }
}

}  // namespace cuda_scan
}  // namespace mamba_export_ops
