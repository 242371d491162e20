// Device helpers shared by the two CUDA scan paths: the per-step math of the
// contract (softplus, silu, decay), and loads and stores of a thread's run of
// consecutive time steps. Dtype conversion is common/cuda_convert.cuh's.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "../common/cuda_convert.cuh"
#include "../common/cuda_fast_math.cuh"
#include "../common/cuda_launch.cuh"
#include "../include/mamba_export_ops/contract.h"
#include "params.h"

namespace mamba_export_ops {
namespace cuda_scan {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarpSize = 32;

template <typename T>
__device__ __forceinline__ T ZeroOf() {
  return FromFloat<T>(0.0f);
}

// torch.nn.functional.softplus with beta 1 and the contract's threshold, as
// max(x, 0) + log1p(e) with e = exp(-|x|) in (0, 1] (no overflow, no cancellation), and
// log1p(e) = 2 atanh(s) with s = e / (2 + e) in (0, 1/3]: the series to s^13 leaves a
// remainder below 2e-8 of the sum. Two special-function instructions and about 15 others,
// where log1pf(expf(x)) compiled to about 50 a step (the chunked scans run it for every
// step of every channel). e = 2^(-|x| log2 e) has the error of FastExp2 on a rounded
// argument, as the decay exp(dt A) does: emulated with exactly rounded 2^x and 1/x, at most
// 8 ulp for x in [-5, 20], 17 in [-20, -5] (where softplus is below 2e-9 of dt's scale).
__device__ __forceinline__ float Softplus(float x) {
  const float e = FastExp2(-fabsf(x) * kLog2e);
  const float s = e * FastReciprocal(2.0f + e);
  const float s2 = s * s;
  float series = 1.0f / 13.0f;
  series = fmaf(series, s2, 1.0f / 11.0f);
  series = fmaf(series, s2, 1.0f / 9.0f);
  series = fmaf(series, s2, 1.0f / 7.0f);
  series = fmaf(series, s2, 1.0f / 5.0f);
  series = fmaf(series, s2, 1.0f / 3.0f);
  series = fmaf(series, s2, 1.0f);
  const float smooth = fmaf(2.0f * s, series, fmaxf(x, 0.0f));
  return x > kSoftplusThreshold ? x : smooth;
}

// common/cuda_fast_math.cuh's (the IEEE division took a range check and a slow-path call).
__device__ __forceinline__ float Silu(float x) { return FastSilu(x); }

// The time step of the contract: delta + bias, then softplus if asked.
__device__ __forceinline__ float TimeStep(float delta, float bias, bool softplus) {
  const float dt = delta + bias;
  return softplus ? Softplus(dt) : dt;
}

// Copies kItems consecutive elements with the widest aligned accesses. The
// caller guarantees that src/dst are aligned to kItems * sizeof(T) bytes (or 16).
template <typename T, int kItems>
__device__ __forceinline__ void VectorLoad(const T* src, T (&dst)[kItems]) {
  constexpr int kBytes = kItems * static_cast<int>(sizeof(T));
  if constexpr (kBytes % 16 == 0) {
#pragma unroll
    for (int c = 0; c < kBytes / 16; ++c) {
      reinterpret_cast<uint4*>(dst)[c] = __ldg(reinterpret_cast<const uint4*>(src) + c);
    }
  } else if constexpr (kBytes % 8 == 0) {
#pragma unroll
    for (int c = 0; c < kBytes / 8; ++c) {
      reinterpret_cast<uint2*>(dst)[c] = __ldg(reinterpret_cast<const uint2*>(src) + c);
    }
  } else {
#pragma unroll
    for (int i = 0; i < kItems; ++i) dst[i] = src[i];
  }
}

template <typename T, int kItems>
__device__ __forceinline__ void VectorStore(T* dst, const T (&src)[kItems]) {
  constexpr int kBytes = kItems * static_cast<int>(sizeof(T));
  if constexpr (kBytes % 16 == 0) {
#pragma unroll
    for (int c = 0; c < kBytes / 16; ++c) {
      reinterpret_cast<uint4*>(dst)[c] = reinterpret_cast<const uint4*>(src)[c];
    }
  } else if constexpr (kBytes % 8 == 0) {
#pragma unroll
    for (int c = 0; c < kBytes / 8; ++c) {
      reinterpret_cast<uint2*>(dst)[c] = reinterpret_cast<const uint2*>(src)[c];
    }
  } else {
#pragma unroll
    for (int i = 0; i < kItems; ++i) dst[i] = src[i];
  }
}

// Loads the steps t0 .. t0 + kItems - 1 of one row of length `length` whose steps are
// `stride` elements apart; steps past the end read as zero. `vector_ok` says every
// row start is 16-byte aligned and the steps are contiguous (stride 1).
template <typename T, int kItems>
__device__ __forceinline__ void LoadRaw(const T* row, int64_t t0, int64_t length, int64_t stride,
                                        bool vector_ok, T (&raw)[kItems]) {
  if (vector_ok && t0 + kItems <= length) {
    VectorLoad<T, kItems>(row + t0, raw);
  } else {
#pragma unroll
    for (int i = 0; i < kItems; ++i) raw[i] = (t0 + i < length) ? row[(t0 + i) * stride] : ZeroOf<T>();
  }
}

template <typename T, int kItems>
__device__ __forceinline__ void LoadFloats(const T* row, int64_t t0, int64_t length, int64_t stride,
                                           bool vector_ok, float (&out)[kItems]) {
  alignas(16) T raw[kItems];
  LoadRaw<T, kItems>(row, t0, length, stride, vector_ok, raw);
#pragma unroll
  for (int i = 0; i < kItems; ++i) out[i] = ToFloat(raw[i]);
}

template <typename T, int kItems>
__device__ __forceinline__ void StoreFloats(T* row, int64_t t0, int64_t length, int64_t stride,
                                            bool vector_ok, const float (&values)[kItems]) {
  alignas(16) T raw[kItems];
#pragma unroll
  for (int i = 0; i < kItems; ++i) raw[i] = FromFloat<T>(values[i]);
  if (vector_ok && t0 + kItems <= length) {
    VectorStore<T, kItems>(row + t0, raw);
  } else {
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      if (t0 + i < length) row[(t0 + i) * stride] = raw[i];
    }
  }
}

// Where one (batch, channel) finds B or C at n = 0, t = 0 (either layout; the rank-3
// form has one group).
__host__ __device__ inline int64_t ProjectionOffset(const ProjectionStrides& s, int64_t groups_field,
                                                    int64_t b, int64_t d, int64_t dim) {
  // One group (every Mamba-1 model) needs no division: two 64-bit divisions per projection cost a
  // decode scan's thread about a fifth of its instructions.
  if (groups_field <= 1) return b * s.batch;
  return b * s.batch + (d / (dim / groups_field)) * s.group;
}
}  // namespace cuda_scan
}  // namespace mamba_export_ops
