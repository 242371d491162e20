// The matrix-vector kernel of Linear, for decode: y (M, N) = x (M, K) weight (N, K)^T with M at
// most kLinearVectorRows.
//
// A run of `lanes` consecutive lanes of a warp (a power of two, at most 32) owns one output
// column n: each lane reads 16-byte pieces of weight row n (and the same pieces of every row of
// x), keeps M float32 sums, and the run adds them with shuffles; a warp covers 32 / lanes
// columns, a block of 256 threads 8 warps' worth. Each lane keeps kGroup pieces of the weight in
// flight and loads the next group while it multiplies the current one, so many loads wait on
// memory at once: at batch 1 the time is the weight's bytes, not the latency of one load.
//
// Launched as a dependent of the kernel before it (common/cuda_launch.cuh), the kernel starts
// while that one finishes. It lets the kernel after it start too, then, when the weight is an
// initializer (params.weight_constant: nothing writes it), loads its first group of the weight
// before it waits for the kernel before: that part of the read overlaps the previous kernel.
// x is read only after the wait.
//
// Pieces are 16 bytes (8 half-precision values or 4 float32) where K fills whole pieces and
// both x and the weight are 16-byte aligned; otherwise single values, same order of sums.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "common/cuda_convert.cuh"
#include "common/cuda_launch.cuh"
#include "linear/cuda.h"
#include "mamba_export_ops/linear.h"

namespace mamba_export_ops {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;
constexpr int kGroup = 4;  // pieces of the weight each lane has in flight

template <typename T, int E>
struct alignas(sizeof(T) * E) Piece {
  T v[E];
};

template <typename T, int E>
__device__ __forceinline__ Piece<T, E> LoadPiece(const T* base, int64_t index) {
  return reinterpret_cast<const Piece<T, E>*>(base)[index];
}

// The lanes that share one output column: enough that each lane reads at most a couple of
// groups of pieces, so a short K (dt_proj's 80) still spreads over several lanes.
__host__ __device__ inline int LanesFor(int64_t pieces) {
  int lanes = 1;
  while (lanes < 32 && lanes * 2 < pieces) lanes *= 2;
  return lanes;
}

template <typename T, int M, int E>
__global__ void __launch_bounds__(kThreads) LinearVectorKernel(const __grid_constant__ LinearParams p, int lanes) {
  ReleaseNextKernel();
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) >> 5;
  const int64_t n = warp * (32 / lanes) + lane / lanes;
  const int sub = lane & (lanes - 1);
  const bool valid = n < p.outer;
  const int64_t pieces = p.inner / E;
  const T* row = static_cast<const T*>(p.weight) + (valid ? n : 0) * p.inner;
  const T* x = static_cast<const T*>(p.x);
  const int64_t stride = static_cast<int64_t>(kGroup) * lanes;

  Piece<T, E> w[kGroup];
  const auto load_group = [&](Piece<T, E>(&into)[kGroup], int64_t first) {
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      const int64_t v = first + static_cast<int64_t>(g) * lanes;
      if (valid && v < pieces) into[g] = LoadPiece<T, E>(row, v);
    }
  };
  if (p.weight_constant) load_group(w, sub);
  WaitForPreviousKernel();
  if (!p.weight_constant) load_group(w, sub);

  float sum[M];
#pragma unroll
  for (int m = 0; m < M; ++m) sum[m] = 0.0f;
  for (int64_t first = sub; valid && first < pieces; first += stride) {
    Piece<T, E> next[kGroup];
    if (first + stride < pieces) load_group(next, first + stride);
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      const int64_t v = first + static_cast<int64_t>(g) * lanes;
      if (v < pieces) {
#pragma unroll
        for (int m = 0; m < M; ++m) {
          const Piece<T, E> xv = LoadPiece<T, E>(x + m * p.inner, v);
#pragma unroll
          for (int e = 0; e < E; ++e) sum[m] = fmaf(ToFloat(w[g].v[e]), ToFloat(xv.v[e]), sum[m]);
        }
      }
    }
#pragma unroll
    for (int g = 0; g < kGroup; ++g) w[g] = next[g];
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    for (int offset = lanes / 2; offset > 0; offset /= 2) sum[m] += __shfl_xor_sync(0xffffffffu, sum[m], offset);
  }
  if (valid && sub == 0) {
    T* y = static_cast<T*>(p.y);
#pragma unroll
    for (int m = 0; m < M; ++m) y[m * p.outer + n] = FromFloat<T>(sum[m]);
  }
}

template <typename T, int E>
cudaError_t LaunchRows(const LinearParams& p, cudaStream_t stream) {
  const int lanes = LanesFor(p.inner / E);
  const int64_t columns_per_block = static_cast<int64_t>(kWarpsPerBlock) * (32 / lanes);
  const int64_t blocks = (p.outer + columns_per_block - 1) / columns_per_block;
  if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
  const dim3 grid(static_cast<unsigned>(blocks));
  static_assert(kLinearVectorRows == 4, "the switch below instantiates M = 1..4");
  switch (p.rows) {
    case 1: return LaunchKernel(LinearVectorKernel<T, 1, E>, grid, kThreads, 0, stream, p, lanes);
    case 2: return LaunchKernel(LinearVectorKernel<T, 2, E>, grid, kThreads, 0, stream, p, lanes);
    case 3: return LaunchKernel(LinearVectorKernel<T, 3, E>, grid, kThreads, 0, stream, p, lanes);
    case 4: return LaunchKernel(LinearVectorKernel<T, 4, E>, grid, kThreads, 0, stream, p, lanes);
  }
  return cudaErrorInvalidValue;
}

template <typename T>
cudaError_t LaunchTyped(const LinearParams& p, cudaStream_t stream) {
  constexpr int kPiece = 16 / static_cast<int>(sizeof(T));
  const bool whole_pieces = p.inner % kPiece == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0 &&
                            reinterpret_cast<uintptr_t>(p.weight) % 16 == 0;
  return whole_pieces ? LaunchRows<T, kPiece>(p, stream) : LaunchRows<T, 1>(p, stream);
}

}  // namespace

cudaError_t LaunchLinearVectorCuda(const LinearParams& params, cudaStream_t stream) {
  if (params.rows < 1 || params.rows > kLinearVectorRows) return cudaErrorInvalidValue;
  if (params.outer == 0) return cudaSuccess;
  switch (params.dtype) {
    case LinearDType::kFloat32: return LaunchTyped<float>(params, stream);
    case LinearDType::kFloat16: return LaunchTyped<__half>(params, stream);
    case LinearDType::kBFloat16: return LaunchTyped<__nv_bfloat16>(params, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace mamba_export_ops
