// The CUDA kernel of ResidualRMSNorm. One block of kThreads threads owns one row (rows
// walked with a grid-stride loop, so any row count fits the grid): each thread sums
// the float32 s = x + residual over a stride of the row, writing s to residual_out as
// it goes; a warp shuffle and one shared-memory step reduce the sum of squares; then
// each thread re-reads its s from residual_out (its own writes, no barrier needed)
// and writes weight * s * inv, rounded once to T. Consecutive threads take
// consecutive hidden units, so every load and store of a warp is coalesced.
//
// Rows of up to kThreads * kHeldMax units (every Mamba model's, H = 768 .. 4096) take a kernel
// that holds each thread's values in registers instead: all its loads of x, the residual and the
// weight are issued at once, and nothing is re-read. Decode has one row per sequence, so a call
// is one or a few blocks and its time is the latency of its dependent loads: one round of loads
// rather than H / kThreads of them (mamba-1.4b's norm at batch 1, 2,048 units: 9.6 us under ncu
// with the loop, 7.0 held; results/gpu/2026-12-01-tile-rule/). Same sums in the same order.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "common/cuda_convert.cuh"
#include "common/cuda_launch.cuh"
#include "residual_norm/cuda.h"

namespace mamba_export_ops {
namespace {

constexpr int kThreads = 256;  // 8 warps per row: H = 768 .. 4096 in Mamba models
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxBlocks = 1 << 20;

__device__ float BlockSum(float value, float* shared) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) total += shared[w];
  __syncthreads();  // shared is reused by the next row
  return total;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) ResidualNormKernel(const __grid_constant__ ResidualNormParams p) {
  __shared__ float shared[kWarps];
  ReleaseNextKernel();
  WaitForPreviousKernel();
  const T* x_all = static_cast<const T*>(p.x);
  const T* weight = static_cast<const T*>(p.weight);
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const int64_t base = row * p.hidden;
    float sum = 0.0f;
    for (int64_t c = threadIdx.x; c < p.hidden; c += kThreads) {
      float s = ToFloat(x_all[base + c]);
      if (p.residual != nullptr) s += p.residual[base + c];
      p.residual_out[base + c] = s;
      sum = fmaf(s, s, sum);
    }
    const float inv = rsqrtf(BlockSum(sum, shared) / static_cast<float>(p.hidden) + p.epsilon);
    T* y = static_cast<T*>(p.y) + base;
    for (int64_t c = threadIdx.x; c < p.hidden; c += kThreads) {
      y[c] = FromFloat<T>(ToFloat(weight[c]) * (p.residual_out[base + c] * inv));
    }
  }
}

// The same with each thread's (at most P) values of a row held in registers: hidden <= P kThreads.
template <typename T, int P>
__global__ void __launch_bounds__(kThreads) ResidualNormHeldKernel(const __grid_constant__ ResidualNormParams p) {
  __shared__ float shared[kWarps];
  ReleaseNextKernel();
  WaitForPreviousKernel();
  const T* x_all = static_cast<const T*>(p.x);
  const T* weight = static_cast<const T*>(p.weight);
  float w[P];
#pragma unroll
  for (int i = 0; i < P; ++i) {
    const int64_t c = threadIdx.x + static_cast<int64_t>(i) * kThreads;
    w[i] = c < p.hidden ? ToFloat(weight[c]) : 0.0f;
  }
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const int64_t base = row * p.hidden;
    float s[P];
#pragma unroll
    for (int i = 0; i < P; ++i) {
      const int64_t c = threadIdx.x + static_cast<int64_t>(i) * kThreads;
      s[i] = 0.0f;
      if (c < p.hidden) {
        s[i] = ToFloat(x_all[base + c]);
        if (p.residual != nullptr) s[i] += p.residual[base + c];
      }
    }
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < P; ++i) {
      const int64_t c = threadIdx.x + static_cast<int64_t>(i) * kThreads;
      if (c < p.hidden) {
        p.residual_out[base + c] = s[i];
        sum = fmaf(s[i], s[i], sum);
      }
    }
    const float inv = rsqrtf(BlockSum(sum, shared) / static_cast<float>(p.hidden) + p.epsilon);
    T* y = static_cast<T*>(p.y) + base;
#pragma unroll
    for (int i = 0; i < P; ++i) {
      const int64_t c = threadIdx.x + static_cast<int64_t>(i) * kThreads;
      if (c < p.hidden) y[c] = FromFloat<T>(w[i] * (s[i] * inv));
    }
  }
}

constexpr int64_t kHeldMax = 16;  // values per thread: rows up to 4096 units

template <typename T>
cudaError_t LaunchTyped(const ResidualNormParams& p, cudaStream_t stream) {
  if (p.rows * p.hidden == 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>(std::min(p.rows, kMaxBlocks));
  const int64_t held = (p.hidden + kThreads - 1) / kThreads;
  if (held <= 4) return LaunchKernel(ResidualNormHeldKernel<T, 4>, blocks, kThreads, 0, stream, p);
  if (held <= 8) return LaunchKernel(ResidualNormHeldKernel<T, 8>, blocks, kThreads, 0, stream, p);
  if (held <= kHeldMax) return LaunchKernel(ResidualNormHeldKernel<T, kHeldMax>, blocks, kThreads, 0, stream, p);
  return LaunchKernel(ResidualNormKernel<T>, blocks, kThreads, 0, stream, p);
}

}  // namespace

cudaError_t LaunchResidualNormCuda(const ResidualNormParams& params, cudaStream_t stream) {
  switch (params.dtype) {
    case NormDType::kFloat32: return LaunchTyped<float>(params, stream);
    case NormDType::kFloat16: return LaunchTyped<__half>(params, stream);
    case NormDType::kBFloat16: return LaunchTyped<__nv_bfloat16>(params, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace mamba_export_ops
