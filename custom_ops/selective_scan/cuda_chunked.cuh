// The chunked parallel scan: the path for long sequences (prefill), where batch x
// channels alone cannot fill the GPU.
//
// One warp owns one (batch, channel) row and walks the sequence in tiles of
// 32 * kItems steps; lane j owns kItems consecutive steps of the tile, so every
// row load is one contiguous, vectorised sweep by the warp. For each state index
// n the recurrence h -> a*h + b is scanned three times cheaply instead of once
// sequentially:
//   1. each lane scans its own steps from a zero state, keeping for every step
//      the product of decays so far (p_i) and the partial state (s_i);
//   2. the lanes' totals (p, s) are combined by a warp-wide inclusive scan, since
//      (p1, s1) then (p2, s2) composes to (p1 p2, p2 s1 + s2), associatively;
//   3. with the state h0 entering its run, each lane has h_i = s_i + p_i h0 for
//      every step at once (no second sequential pass) and adds C h_i to y.
// The state entering each tile (the carry, one float per n) lives in shared
// memory, double-buffered so a tile reads one buffer and writes the other.
#pragma once

#include "cuda_common.cuh"

namespace mamba_export_ops {
namespace cuda_scan {

// Warps (channels) per block. Half-precision I/O: two, as small blocks spread the
// last wave of a grid more evenly over the multiprocessors (measured on an H200,
// 2 to 5 % faster than four-warp blocks at D = 1536 and 2560). float32 I/O: four;
// its kernel needs more registers, so two-warp blocks of it fit fewer warps on a
// multiprocessor (10 against 12) and ran slower (docs/gpu.md).
template <typename T>
__host__ __device__ constexpr int ChunkedWarps() {
  return sizeof(T) == 4 ? 4 : 2;
}

// Shared memory of one block: two carry buffers of N floats for each warp.
template <typename T>
size_t ChunkedSharedBytes(int64_t state) {
  return static_cast<size_t>(2 * ChunkedWarps<T>()) * static_cast<size_t>(state) * sizeof(float);
}

// The warp-wide inclusive scan of the lanes' (decay product, state) pairs.
__device__ __forceinline__ void WarpScanPairs(int lane, float& prod, float& state) {
#pragma unroll
  for (int offset = 1; offset < kWarpSize; offset <<= 1) {
    const float prev_prod = __shfl_up_sync(kFullMask, prod, offset);
    const float prev_state = __shfl_up_sync(kFullMask, state, offset);
    if (lane >= offset) {
      state = fmaf(prod, prev_state, state);
      prod *= prev_prod;
    }
  }
}

// Adds the contribution of state index n over this lane's steps to y and
// returns the state after the whole tile.
template <typename T, int kItems>
__device__ __forceinline__ float ScanOneState(int lane, float a2, float carry_in,
                                              const float (&dt)[kItems], const float (&dtu)[kItems],
                                              const T (&b_raw)[kItems], const T (&c_raw)[kItems],
                                              float (&y)[kItems]) {
  float prods[kItems];
  float states[kItems];
  float prod = 1.0f;
  float state = 0.0f;
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    const float decay = FastExp2(dt[i] * a2);
    prod *= decay;
    state = fmaf(decay, state, dtu[i] * ToFloat(b_raw[i]));
    prods[i] = prod;
    states[i] = state;
  }
  WarpScanPairs(lane, prod, state);
  // Exclusive prefix: the composition of the lanes before this one.
  float before_prod = __shfl_up_sync(kFullMask, prod, 1);
  float before_state = __shfl_up_sync(kFullMask, state, 1);
  if (lane == 0) {
    before_prod = 1.0f;
    before_state = 0.0f;
  }
  const float entering = fmaf(before_prod, carry_in, before_state);
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    y[i] = fmaf(ToFloat(c_raw[i]), fmaf(prods[i], entering, states[i]), y[i]);
  }
  const float tile_prod = __shfl_sync(kFullMask, prod, kWarpSize - 1);
  const float tile_state = __shfl_sync(kFullMask, state, kWarpSize - 1);
  return fmaf(tile_prod, carry_in, tile_state);
}

template <typename T, int kItems>
__global__ void __launch_bounds__(ChunkedWarps<T>() * kWarpSize, 1)
    ChunkedScanKernel(const SelectiveScanParams p, bool vector_ok) {
  extern __shared__ float carry_shared[];
  ReleaseNextKernel();
  WaitForPreviousKernel();
  constexpr int64_t kTile = static_cast<int64_t>(kWarpSize) * kItems;
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int64_t channel = static_cast<int64_t>(blockIdx.x) * ChunkedWarps<T>() + warp;
  // Whole warps leave together; the kernel has no block-wide barrier.
  if (channel >= p.batch * p.dim) return;
  const int64_t b = channel / p.dim;
  const int64_t d = channel % p.dim;
  const int64_t N = p.state;
  const int64_t L = p.length;

  float* const carry = carry_shared + 2 * warp * N;  // buffers [0, N) and [N, 2N)
  for (int64_t n = lane; n < N; n += kWarpSize) {
    carry[n] = p.initial_state != nullptr ? p.initial_state[channel * N + n] : 0.0f;
  }
  __syncwarp();

  // Steps are p.seq.time apart: 1 channels first, D channels last (where the warps of a
  // block, neighbouring channels, share the sectors they read).
  const int64_t row = b * p.seq.batch + d * p.seq.dim;
  const int64_t step = p.seq.time;
  const T* u_row = static_cast<const T*>(p.u) + row;
  const T* delta_row = static_cast<const T*>(p.delta) + row;
  // z has its own strides: it may be read at an offset of a packed (B, L, W) tensor.
  const T* z_row = p.z != nullptr ? static_cast<const T*>(p.z) + b * p.z_seq.batch + d * p.z_seq.dim : nullptr;
  const int64_t z_step = p.z_seq.time;
  T* y_row = static_cast<T*>(p.y) + row;
  const T* b_rows = static_cast<const T*>(p.B) + ProjectionOffset(p.proj_b, p.groups_b, b, d, p.dim);
  const T* c_rows = static_cast<const T*>(p.C) + ProjectionOffset(p.proj_c, p.groups_c, b, d, p.dim);
  const int64_t b_step = p.proj_b.time, c_step = p.proj_c.time;
  const int64_t b_state = p.proj_b.state, c_state = p.proj_c.state;
  const float* a_row = p.A + d * N;
  const float bias = p.delta_bias != nullptr ? p.delta_bias[d] : 0.0f;
  const float skip = p.D != nullptr ? p.D[d] : 0.0f;

  int parity = 0;
  for (int64_t tile = 0; tile < L; tile += kTile) {
    const int64_t t0 = tile + static_cast<int64_t>(lane) * kItems;
    float dt[kItems], dtu[kItems], y[kItems];
    if (p.delta_float32) {
      // The projected form: delta computed before the scan, float32 (B, L, D), channels last.
      LoadFloats<float, kItems>(static_cast<const float*>(p.delta) + row, t0, L, step, false, dt);
    } else {
      LoadFloats<T, kItems>(delta_row, t0, L, step, vector_ok, dt);
    }
    LoadFloats<T, kItems>(u_row, t0, L, step, vector_ok, y);  // y holds u for now
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      // A step past the end must be the identity (decay 1, input 0).
      dt[i] = (t0 + i < L) ? TimeStep(dt[i], bias, p.delta_softplus) : 0.0f;
      dtu[i] = dt[i] * y[i];
      y[i] *= skip;
    }
    const float* carry_in = carry + parity * N;
    float* carry_out = carry + (parity ^ 1) * N;
    alignas(16) T b_next[kItems];
    alignas(16) T c_next[kItems];
    if (N > 0) {
      LoadRaw<T, kItems>(b_rows, t0, L, b_step, vector_ok, b_next);
      LoadRaw<T, kItems>(c_rows, t0, L, c_step, vector_ok, c_next);
    }
    for (int64_t n = 0; n < N; ++n) {
      alignas(16) T b_now[kItems];
      alignas(16) T c_now[kItems];
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        b_now[i] = b_next[i];
        c_now[i] = c_next[i];
      }
      // Fetch the next state index's rows while this one computes.
      if (n + 1 < N) {
        LoadRaw<T, kItems>(b_rows + (n + 1) * b_state, t0, L, b_step, vector_ok, b_next);
        LoadRaw<T, kItems>(c_rows + (n + 1) * c_state, t0, L, c_step, vector_ok, c_next);
      }
      const float a2 = __ldg(a_row + n) * kLog2e;
      const float out = ScanOneState<T, kItems>(lane, a2, carry_in[n], dt, dtu, b_now, c_now, y);
      if (lane == 0) carry_out[n] = out;
    }
    if (z_row != nullptr) {
      float z[kItems];
      LoadFloats<T, kItems>(z_row, t0, L, z_step, vector_ok, z);
#pragma unroll
      for (int i = 0; i < kItems; ++i) y[i] *= Silu(z[i]);
    }
    StoreFloats<T, kItems>(y_row, t0, L, step, vector_ok, y);
    parity ^= 1;
    __syncwarp();  // this tile's carries are visible to every lane of the next
  }
  for (int64_t n = lane; n < N; n += kWarpSize) p.last_state[channel * N + n] = carry[parity * N + n];
}

}  // namespace cuda_scan
}  // namespace mamba_export_ops
