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

// The largest element offset (or product of indices) the walk computes for a call: where it is
// below 2^31 the walk takes its index arithmetic in 32 bits (common/index_width.h).
inline int64_t SequentialLastOffset(const SelectiveScanParams& p) {
  const int64_t last_b = p.batch - 1, last_d = p.dim - 1, last_t = p.length > 0 ? p.length - 1 : 0;
  const int64_t last_n = p.state - 1;
  const auto sequence = [&](const SequenceStrides& s) { return last_b * s.batch + last_d * s.dim + last_t * s.time; };
  const auto projection = [&](const ProjectionStrides& s, int64_t groups) {
    return last_b * s.batch + (groups > 1 ? groups - 1 : 0) * s.group + last_n * s.state + last_t * s.time;
  };
  const int64_t offsets[] = {
      sequence(p.seq), sequence(p.z_seq), projection(p.proj_b, p.groups_b), projection(p.proj_c, p.groups_c),
      p.batch * p.dim * p.state, p.dim * p.state, p.dim * p.rank, (p.batch * p.length + 1) * p.packed.delta + p.rank,
      // the lane-group threads of one batch entry
      p.dim * kSequentialThreads};
  int64_t last = 0;
  for (const int64_t offset : offsets) {
    if (offset < 0) return -1;
    last = offset > last ? offset : last;
  }
  return last;
}

// One (batch, channel) row: this lane's states of row (b, d_lane), d_lane past D for lanes that
// only take part in the shuffles. I: the index type (int32_t where SequentialLastOffset fits).
template <typename T, typename I>
__device__ __forceinline__ void SequentialScanRow(const SelectiveScanParams& p, I b, I d_lane, int slot,
                                                  int log2_lanes) {
  const int lanes = 1 << log2_lanes;
  const I dim = static_cast<I>(p.dim);
  const bool active = d_lane < dim;
  const I d = active ? d_lane : 0;
  const I N = static_cast<I>(p.state);
  const I L = static_cast<I>(p.length);
  const I channel = b * dim + d;
  const I n0 = static_cast<I>(slot) * kStatesPerLane;

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
  const I row = b * static_cast<I>(p.seq.batch) + d * static_cast<I>(p.seq.dim);
  const I step = static_cast<I>(p.seq.time);
  // z has its own strides: it may be read at an offset of a packed (B, L, W) tensor.
  const I z_row = b * static_cast<I>(p.z_seq.batch) + d * static_cast<I>(p.z_seq.dim);
  const I z_step = static_cast<I>(p.z_seq.time);
  // ProjectionOffset's arithmetic in I: one group needs no division.
  const I b_offset = b * static_cast<I>(p.proj_b.batch) +
                     (p.groups_b > 1 ? d / (dim / static_cast<I>(p.groups_b)) * static_cast<I>(p.proj_b.group) : 0);
  const I c_offset = b * static_cast<I>(p.proj_c.batch) +
                     (p.groups_c > 1 ? d / (dim / static_cast<I>(p.groups_c)) * static_cast<I>(p.proj_c.group) : 0);
  const T* b_rows = static_cast<const T*>(p.B) + b_offset;
  const T* c_rows = static_cast<const T*>(p.C) + c_offset;
  const I b_state = static_cast<I>(p.proj_b.state), b_time = static_cast<I>(p.proj_b.time);
  const I c_state = static_cast<I>(p.proj_c.state), c_time = static_cast<I>(p.proj_c.time);
  const float bias = (active && p.delta_bias != nullptr) ? p.delta_bias[d] : 0.0f;
  const float skip = (active && p.D != nullptr) ? p.D[d] : 0.0f;

  const I rank = static_cast<I>(p.rank);
  const float* weight_row = p.delta_weight != nullptr ? p.delta_weight + d * rank : nullptr;

  for (I t = 0; t < L; ++t) {
    float u = 0.0f;
    float dt = 0.0f;
    if (weight_row != nullptr) {
      // This lane's share of the R terms; every lane of the group ends with the whole sum.
      float share = 0.0f;
      if (active) {
        // ProjectedDeltaRowOffset in I.
        const T* x_dt = static_cast<const T*>(p.delta) + (b * L + t) * static_cast<I>(p.packed.delta);
        for (I r = slot; r < rank; r += lanes) share = fmaf(__ldg(weight_row + r), ToFloat(x_dt[r]), share);
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
        const I n = n0 + k;
        const float bn = ToFloat(b_rows[n * b_state + t * b_time]);
        const float cn = ToFloat(c_rows[n * c_state + t * c_time]);
        h[k] = fmaf(FastExp2(dt * a2[k]), h[k], dtu * bn);
        partial = fmaf(cn, h[k], partial);
      }
    }
    for (int offset = lanes / 2; offset > 0; offset /= 2) {
      partial += __shfl_xor_sync(kFullMask, partial, offset);
    }
    if (active && slot == 0) {
      float y = fmaf(skip, u, partial);
      if (p.z != nullptr) y *= Silu(ToFloat(static_cast<const T*>(p.z)[z_row + t * z_step]));
      static_cast<T*>(p.y)[row + t * step] = FromFloat<T>(y);
    }
  }
#pragma unroll
  for (int k = 0; k < kStatesPerLane; ++k) {
    if (active && n0 + k < N) p.last_state[channel * N + n0 + k] = h[k];
  }
}

// Blocks along x cover one batch entry's channels (lane groups), blockIdx.y is the batch entry
// (gridDim.y entries apart where the batch is larger than a grid's y extent): no division by D.
template <typename T, typename I>
__global__ void __launch_bounds__(kSequentialThreads)
    SequentialScanKernel(const SelectiveScanParams p, int log2_lanes) {
  ReleaseNextKernel();
  WaitForPreviousKernel();
  const I thread = static_cast<I>(blockIdx.x) * kSequentialThreads + static_cast<I>(threadIdx.x);
  const int slot = static_cast<int>(thread & ((1 << log2_lanes) - 1));
  const I batch = static_cast<I>(p.batch);
  for (I b = static_cast<I>(blockIdx.y); b < batch; b += static_cast<I>(gridDim.y)) {
    SequentialScanRow<T, I>(p, b, thread >> log2_lanes, slot, log2_lanes);
  }
}

}  // namespace cuda_scan
}  // namespace mamba_export_ops
