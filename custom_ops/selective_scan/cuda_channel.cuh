// The decode scan for many rows: one thread per (batch, channel), all N <= 16 states in
// its registers.
//
// SequentialScanKernel gives each (batch, channel) a group of up to four lanes, so at
// batch 32 and D = 1536 it runs 196,608 threads, and every lane repeats the row's index
// arithmetic, its time step (softplus) and its gate (silu) for four states. Here one
// thread does the row: a quarter of the threads and of the repeated work, and its states,
// A and the time step's projection are contiguous runs it reads in 16-byte pieces.
//
// It gives SequentialScanKernel's bits: the states are taken in the same runs of
// kStatesPerLane, and the runs' partial sums (and the projected delta's shares) are added
// in the order that kernel's shuffle tree adds them (TreeSum). The launcher (cuda.cu) takes
// it for N <= kChannelMaxState where batch x D gives enough threads (kChannelMinRows); the
// decode-scan switch (cuda_loads.h, off by default until a GPU round has timed it) selects it.
#pragma once

#include "cuda_common.cuh"
#include "cuda_sequential.cuh"

namespace mamba_export_ops {
namespace cuda_scan {

constexpr int kChannelThreads = 128;
// Four runs of kStatesPerLane: the groups of SequentialScanKernel have at most four lanes here.
constexpr int kChannelRuns = 4;
constexpr int64_t kChannelMaxState = kChannelRuns * kStatesPerLane;
// Rows (batch x D) from which the launcher takes this kernel: below it, the lane groups'
// extra threads are what keeps the GPU busy.
constexpr int64_t kChannelMinRows = 8192;

// What lane 0 of a group of `lanes` ends with after the xor-shuffle sum of SequentialScanKernel:
// at each offset o (lanes/2 down to 1) lane i adds lane i + o's value to its own.
__device__ __forceinline__ float TreeSum(float (&values)[kChannelRuns], int lanes) {
#pragma unroll
  for (int offset = kChannelRuns / 2; offset > 0; offset /= 2) {
    if (offset < lanes) {
#pragma unroll
      for (int i = 0; i < offset; ++i) values[i] += values[i + offset];
    }
  }
  return values[0];
}

// Up to kChannelMaxState floats from src (count of them) into dst; 16-byte pieces where
// kVector says src is aligned and count is a multiple of four.
template <bool kVector>
__device__ __forceinline__ void LoadStates(const float* src, int count, float (&dst)[kChannelMaxState]) {
#pragma unroll
  for (int run = 0; run < kChannelRuns; ++run) {
    const int n0 = run * kStatesPerLane;
    if (kVector && n0 < count) {
      const float4 v = *reinterpret_cast<const float4*>(src + n0);
      dst[n0] = v.x;
      dst[n0 + 1] = v.y;
      dst[n0 + 2] = v.z;
      dst[n0 + 3] = v.w;
    } else {
#pragma unroll
      for (int k = 0; k < kStatesPerLane; ++k) dst[n0 + k] = n0 + k < count ? src[n0 + k] : 0.0f;
    }
  }
}

template <typename T, bool kVector>
__global__ void __launch_bounds__(kChannelThreads) ChannelScanKernel(const SelectiveScanParams p, int lanes) {
  ReleaseNextKernel();
  WaitForPreviousKernel();
  const int64_t d = static_cast<int64_t>(blockIdx.x) * kChannelThreads + threadIdx.x;
  if (d >= p.dim) return;
  const int64_t b = blockIdx.y;
  const int64_t channel = b * p.dim + d;
  const int N = static_cast<int>(p.state);

  float a2[kChannelMaxState];
  float h[kChannelMaxState];
  LoadStates<kVector>(p.A + d * N, N, a2);
#pragma unroll
  for (int n = 0; n < kChannelMaxState; ++n) a2[n] *= kLog2e;
  if (p.initial_state != nullptr) {
    // A plain load: the initial and last state may be one buffer (read before written).
    LoadStates<kVector>(p.initial_state + channel * N, N, h);
  } else {
#pragma unroll
    for (int n = 0; n < kChannelMaxState; ++n) h[n] = 0.0f;
  }

  const int64_t row = b * p.seq.batch + d * p.seq.dim;
  const int64_t step = p.seq.time;
  const int64_t z_row = b * p.z_seq.batch + d * p.z_seq.dim;
  const T* b_rows = static_cast<const T*>(p.B) + ProjectionOffset(p.proj_b, p.groups_b, b, d, p.dim);
  const T* c_rows = static_cast<const T*>(p.C) + ProjectionOffset(p.proj_c, p.groups_c, b, d, p.dim);
  const float bias = p.delta_bias != nullptr ? p.delta_bias[d] : 0.0f;
  const float skip = p.D != nullptr ? p.D[d] : 0.0f;
  const float* weight_row = p.delta_weight != nullptr ? p.delta_weight + d * p.rank : nullptr;

  for (int64_t t = 0; t < p.length; ++t) {
    const float u = ToFloat(static_cast<const T*>(p.u)[row + t * step]);
    float delta;
    if (weight_row != nullptr) {
      // Lane j of the group summed the terms r = j, j + lanes, ...; then the tree.
      const T* x_dt = static_cast<const T*>(p.delta) + ProjectedDeltaRowOffset(p, b, t);
      float shares[kChannelRuns] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
      for (int j = 0; j < kChannelRuns; ++j) {
        if (j < lanes) {
          for (int64_t r = j; r < p.rank; r += lanes) {
            shares[j] = fmaf(__ldg(weight_row + r), ToFloat(x_dt[r]), shares[j]);
          }
        }
      }
      delta = TreeSum(shares, lanes);
    } else {
      delta = ToFloat(static_cast<const T*>(p.delta)[row + t * step]);
    }
    const float dt = TimeStep(delta, bias, p.delta_softplus);
    const float dtu = dt * u;
    float partials[kChannelRuns] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int n = 0; n < kChannelMaxState; ++n) {
      if (n < N) {
        const float bn = ToFloat(b_rows[n * p.proj_b.state + t * p.proj_b.time]);
        const float cn = ToFloat(c_rows[n * p.proj_c.state + t * p.proj_c.time]);
        h[n] = fmaf(FastExp2(dt * a2[n]), h[n], dtu * bn);
        partials[n / kStatesPerLane] = fmaf(cn, h[n], partials[n / kStatesPerLane]);
      }
    }
    float y = fmaf(skip, u, TreeSum(partials, lanes));
    if (p.z != nullptr) y *= Silu(ToFloat(static_cast<const T*>(p.z)[z_row + t * p.z_seq.time]));
    static_cast<T*>(p.y)[row + t * step] = FromFloat<T>(y);
  }

  float* out = p.last_state + channel * N;
#pragma unroll
  for (int run = 0; run < kChannelRuns; ++run) {
    const int n0 = run * kStatesPerLane;
    if (kVector && n0 < N) {
      *reinterpret_cast<float4*>(out + n0) = make_float4(h[n0], h[n0 + 1], h[n0 + 2], h[n0 + 3]);
    } else {
#pragma unroll
      for (int k = 0; k < kStatesPerLane; ++k) {
        if (n0 + k < N) out[n0 + k] = h[n0 + k];
      }
    }
  }
}

}  // namespace cuda_scan
}  // namespace mamba_export_ops
