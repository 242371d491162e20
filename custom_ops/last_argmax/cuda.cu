// The CUDA kernel of LastArgMax. One block of kThreads threads owns one sequence (sequences
// walked with a grid-stride loop, so any batch fits the grid) and reads only the last
// position's row of logits, where it lies: consecutive threads take consecutive 16-byte pieces
// of the row (8 half-precision or 4 float32 entries; single entries where the row does not
// start on 16 bytes, and for the entries past the last whole piece), so every load of a warp is
// coalesced, and each thread issues kUnroll loads before comparing them: a 50,280-entry
// float16 row is about six pieces a thread, one round of loads. Each thread keeps its best
// (value, index), widened to float32; a warp shuffle and one shared-memory step reduce them,
// and thread 0 writes the token.
//
// The combine rule is a strict total order on (value, index) pairs, so the result does not
// depend on the order threads or warps are combined in: a NaN beats every number, a larger
// value beats a smaller, and between equal values (or two NaNs) the smaller index wins. That
// is NumPy's argmax: the first maximum, or the first NaN. A thread with no entry of the row
// holds (-inf, V), which every entry beats (a real -inf by its smaller index).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/cuda_convert.cuh"
#include "common/cuda_launch.cuh"
#include "last_argmax/cuda.h"

namespace mamba_export_ops {
namespace {

constexpr int kThreads = 1024;  // a decode step at batch 1 is one block: as many loads in flight as it can hold
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = 4;
constexpr int64_t kMaxBlocks = 1 << 20;

// Whether (value, index) comes before (best, best_index) in the argmax's order.
__device__ __forceinline__ bool Beats(float value, int64_t index, float best, int64_t best_index) {
  const bool value_nan = isnan(value), best_nan = isnan(best);
  if (value_nan || best_nan) return value_nan && (!best_nan || index < best_index);
  return value > best || (value == best && index < best_index);
}

__device__ __forceinline__ void Take(float value, int64_t index, float& best, int64_t& best_index) {
  if (Beats(value, index, best, best_index)) {
    best = value;
    best_index = index;
  }
}

// Every entry of a 16-byte piece whose first entry is `first`, in index order.
template <typename T>
__device__ __forceinline__ void TakePiece(const uint4& piece, int64_t first, float& best, int64_t& best_index) {
  constexpr int kCount = static_cast<int>(sizeof(uint4) / sizeof(T));
  const T* values = reinterpret_cast<const T*>(&piece);
#pragma unroll
  for (int e = 0; e < kCount; ++e) Take(ToFloat(values[e]), first + e, best, best_index);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) LastArgMaxKernel(const __grid_constant__ LastArgMaxParams p) {
  __shared__ float shared_values[kWarps];
  __shared__ int64_t shared_indices[kWarps];
  ReleaseNextKernel();
  WaitForPreviousKernel();
  const T* logits = static_cast<const T*>(p.logits);
  const int64_t vocab = p.vocab;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t b = blockIdx.x; b < p.batch; b += gridDim.x) {
    // The last position of sequence b (params.h: LastRowOffset).
    const T* row = logits + (b * p.positions + p.positions - 1) * vocab;
    float best = -INFINITY;
    int64_t best_index = vocab;
    int64_t c = threadIdx.x;
    if (reinterpret_cast<uintptr_t>(row) % sizeof(uint4) == 0) {
      constexpr int64_t kCount = static_cast<int64_t>(sizeof(uint4) / sizeof(T));
      const int64_t pieces = vocab / kCount;
      const uint4* piece_row = reinterpret_cast<const uint4*>(row);
      int64_t v = threadIdx.x;
      for (; v + (kUnroll - 1) * kThreads < pieces; v += kUnroll * kThreads) {
        uint4 loaded[kUnroll];
#pragma unroll
        for (int i = 0; i < kUnroll; ++i) loaded[i] = piece_row[v + i * kThreads];
#pragma unroll
        for (int i = 0; i < kUnroll; ++i) TakePiece<T>(loaded[i], (v + i * kThreads) * kCount, best, best_index);
      }
      for (; v < pieces; v += kThreads) TakePiece<T>(piece_row[v], v * kCount, best, best_index);
      c = pieces * kCount + threadIdx.x;  // the entries past the last whole piece, one at a time below
    }
    for (; c + (kUnroll - 1) * kThreads < vocab; c += kUnroll * kThreads) {
      float values[kUnroll];
#pragma unroll
      for (int i = 0; i < kUnroll; ++i) values[i] = ToFloat(row[c + i * kThreads]);
#pragma unroll
      for (int i = 0; i < kUnroll; ++i) Take(values[i], c + i * kThreads, best, best_index);
    }
    for (; c < vocab; c += kThreads) Take(ToFloat(row[c]), c, best, best_index);
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      const float other = __shfl_xor_sync(0xffffffffu, best, offset);
      const int64_t other_index = __shfl_xor_sync(0xffffffffu, best_index, offset);
      Take(other, other_index, best, best_index);
    }
    if (lane == 0) {
      shared_values[warp] = best;
      shared_indices[warp] = best_index;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kWarps; ++w) Take(shared_values[w], shared_indices[w], best, best_index);
      p.tokens[b] = best_index;
    }
    __syncthreads();  // shared is reused by the next sequence
  }
}

template <typename T>
cudaError_t LaunchTyped(const LastArgMaxParams& p, cudaStream_t stream) {
  if (p.batch == 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>(std::min(p.batch, kMaxBlocks));
  return LaunchKernel(LastArgMaxKernel<T>, blocks, kThreads, 0, stream, p);
}

}  // namespace

cudaError_t LaunchLastArgMaxCuda(const LastArgMaxParams& params, cudaStream_t stream) {
  switch (params.dtype) {
    case ArgMaxDType::kFloat32: return LaunchTyped<float>(params, stream);
    case ArgMaxDType::kFloat16: return LaunchTyped<__half>(params, stream);
    case ArgMaxDType::kBFloat16: return LaunchTyped<__nv_bfloat16>(params, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace mamba_export_ops
