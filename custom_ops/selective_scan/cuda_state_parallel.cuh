// The state-parallel scan: the path for prefill with N <= 16 when batch x
// channels x state alone gives the GPU enough lanes (see cuda.cu).
//
// Each lane owns one state value of one (batch, channel) and walks the sequence
// one step at a time, so no combine of partial scans is needed: the only
// dependent operation per step is one fused multiply-add on the state. A group
// of P lanes (P = N rounded up to a power of two, 4 to 16) owns a channel; lane j
// holds state j. The sequence goes in blocks of P steps:
//   1. lane j loads step t0 + j of u, delta and z (coalesced across the group)
//      and computes that step's time step dt and dt * u once for the group,
//      which reads them back from shared memory;
//   2. every lane advances its states through the P steps, keeping the products
//      C h of each step in registers (its row of B and C for the block is one
//      contiguous vector load, prefetched a block ahead);
//   3. a butterfly reduce-scatter over the group sums those products over the
//      states, leaving lane j with y at step t0 + j, which it gates and stores.
#pragma once

#include "cuda_common.cuh"

namespace mamba_export_ops {
namespace cuda_scan {

constexpr int kStateParallelThreads = 64;
constexpr int kStateParallelWarps = kStateParallelThreads / kWarpSize;
// The largest N this path serves: a lane keeps a block of P steps of its rows of
// B and C in registers, twice (prefetch), which stops fitting beyond P = 16.
constexpr int64_t kStateParallelMaxState = 16;

// Lanes per channel (P) for N states: N rounded up to a power of two, at least 4.
inline int StateParallelLanes(int64_t state) {
  int lanes = 4;
  while (lanes < state) lanes *= 2;
  return lanes;
}

// One stage of the butterfly reduce-scatter below: a lane keeps half of its
// 2 * kHalf values (the upper half if bit kHalf of its index is set) and adds its
// partner's copy of that half.
template <int kHalf, int kLanes>
__device__ __forceinline__ void ReduceScatterStage(int lane_in_group, float (&values)[kLanes]) {
  const bool upper = (lane_in_group & kHalf) != 0;
#pragma unroll
  for (int i = 0; i < kHalf; ++i) {
    const float send = upper ? values[i] : values[i + kHalf];
    const float keep = upper ? values[i + kHalf] : values[i];
    values[i] = keep + __shfl_xor_sync(kFullMask, send, kHalf);
  }
  if constexpr (kHalf > 1) ReduceScatterStage<kHalf / 2, kLanes>(lane_in_group, values);
}

// Sums values[k] over the kLanes lanes of a group so that lane j of the group
// ends up with the total of values[j].
template <int kLanes>
__device__ __forceinline__ float ReduceScatter(int lane_in_group, float (&values)[kLanes]) {
  ReduceScatterStage<kLanes / 2, kLanes>(lane_in_group, values);
  return values[0];
}

// One block of kLanes steps of one lane's inputs: its own step of u, delta, z
// and its rows of B and C.
template <typename T, int kLanes>
struct StepBlock {
  T u, delta, z;
  alignas(16) T b[kLanes];
  alignas(16) T c[kLanes];
};

template <typename T, int kLanes>
__global__ void __launch_bounds__(kStateParallelThreads)
    StateParallelScanKernel(const SelectiveScanParams p, bool vector_ok) {
  __shared__ float shared_dt[kStateParallelWarps][kWarpSize];
  __shared__ float shared_dtu[kStateParallelWarps][kWarpSize];
  constexpr int kChannelsPerWarp = kWarpSize / kLanes;
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int j = lane % kLanes;
  const int group_base = lane - j;  // this channel's first slot in the warp's shared rows
  const int64_t channel =
      (static_cast<int64_t>(blockIdx.x) * kStateParallelWarps + warp) * kChannelsPerWarp + lane / kLanes;
  // Lanes past the last channel stay to take part in the shuffles.
  const bool active = channel < p.batch * p.dim;
  const int64_t b = active ? channel / p.dim : 0;
  const int64_t d = active ? channel % p.dim : 0;
  const int64_t N = p.state;
  const int64_t L = p.length;
  const int64_t row = active ? channel * L : 0;

  // Lane j owns state n = j; lanes past N (N not a power of two) keep h = 0.
  const bool owns = active && j < N;
  const float a2 = owns ? p.A[d * N + j] * kLog2e : 0.0f;
  float h = (owns && p.initial_state != nullptr) ? p.initial_state[channel * N + j] : 0.0f;
  const int64_t rows_offset = owns ? j * L : 0;
  const T* b_row = static_cast<const T*>(p.B) + rows_offset +
                   GroupedRows{GroupsOf(p.groups_b)}.Offset(b, d, p.dim, N, L);
  const T* c_row = static_cast<const T*>(p.C) + rows_offset +
                   GroupedRows{GroupsOf(p.groups_c)}.Offset(b, d, p.dim, N, L);
  const float bias = (active && p.delta_bias != nullptr) ? p.delta_bias[d] : 0.0f;
  const float skip = (active && p.D != nullptr) ? p.D[d] : 0.0f;
  const T* u_row = static_cast<const T*>(p.u) + row;
  const T* delta_row = static_cast<const T*>(p.delta) + row;
  const T* z_row = p.z != nullptr ? static_cast<const T*>(p.z) + row : nullptr;
  T* y_row = static_cast<T*>(p.y) + row;

  auto load = [&](int64_t t0, StepBlock<T, kLanes>& block) {
    const int64_t t = t0 + j;
    const bool in_range = active && t < L;
    block.u = in_range ? u_row[t] : ZeroOf<T>();
    block.delta = in_range ? delta_row[t] : ZeroOf<T>();
    block.z = (in_range && z_row != nullptr) ? z_row[t] : ZeroOf<T>();
    if (owns) {
      LoadRaw<T, kLanes>(b_row, t0, L, vector_ok, block.b);
      LoadRaw<T, kLanes>(c_row, t0, L, vector_ok, block.c);
    } else {
#pragma unroll
      for (int k = 0; k < kLanes; ++k) block.b[k] = block.c[k] = ZeroOf<T>();
    }
  };

  StepBlock<T, kLanes> next;
  load(0, next);
  for (int64_t t0 = 0; t0 < L; t0 += kLanes) {
    const StepBlock<T, kLanes> now = next;
    if (t0 + kLanes < L) load(t0 + kLanes, next);
    const bool step_valid = active && t0 + j < L;
    // A step past the end must be the identity (decay 1, input 0).
    const float u = ToFloat(now.u);
    const float dt = step_valid ? TimeStep(ToFloat(now.delta), bias, p.delta_softplus) : 0.0f;
    __syncwarp();  // the previous block's reads of the shared rows are done
    shared_dt[warp][lane] = dt;
    shared_dtu[warp][lane] = dt * u;
    __syncwarp();
    float products[kLanes];
#pragma unroll
    for (int k = 0; k < kLanes; ++k) {
      const float dt_k = shared_dt[warp][group_base + k];
      const float dtu_k = shared_dtu[warp][group_base + k];
      // Lanes without a state have B = C = 0 and a2 = 0, so h stays 0.
      h = fmaf(FastExp2(dt_k * a2), h, dtu_k * ToFloat(now.b[k]));
      products[k] = ToFloat(now.c[k]) * h;
    }
    float y = ReduceScatter<kLanes>(j, products);
    if (step_valid) {
      y = fmaf(skip, u, y);
      if (z_row != nullptr) y *= Silu(ToFloat(now.z));
      y_row[t0 + j] = FromFloat<T>(y);
    }
  }
  if (owns) p.last_state[channel * N + j] = h;
}

}  // namespace cuda_scan
}  // namespace mamba_export_ops
