// The CUDA kernel of CausalConv1d. One thread owns one channel of one batch row over
// a chunk of kChunk time steps: it loads the K - 1 inputs before its chunk (from x
// or conv_state), then walks time keeping them in registers, so each input is read
// from memory once per chunk. Consecutive threads take consecutive channels, the
// inner dimension of x and y, so every load and store of a warp is coalesced. Tiles
// (batch row, time chunk, block of channels) are walked with a grid-stride loop, so
// any B * L fits the grid. The thread of a row's last chunk writes new_conv_state.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "causal_conv/cuda.h"
#include "common/cuda_convert.cuh"
#include "common/cuda_launch.cuh"

namespace mamba_export_ops {
namespace {

constexpr int kThreads = 128;        // channels per block
constexpr int kChunk = 32;           // time steps per thread: enough blocks to fill the GPU at B = 1
constexpr int64_t kMaxBlocks = 1 << 20;
constexpr int kMaxUnrolledWidth = 4;  // K = 1..4 keep their window in registers; wider K reads memory

// One (batch row, channel) of the call, with the window's inputs addressed by the
// step of x they belong to (negative steps are conv_state's columns).
template <typename T>
struct Channel {
  const CausalConvParams& p;
  int64_t b;
  int64_t c;

  __device__ bool Kept(int64_t t) const { return p.mask == nullptr || p.mask[b * p.length + t] != 0; }

  // The window entry of step j as float32: a select, so a dropped input is exactly 0
  // whatever it holds.
  __device__ float Input(int64_t j) const {
    const int64_t columns = p.width - 1;
    if (j < 0) {
      if (p.conv_state == nullptr) return 0.0f;
      return ToFloat(static_cast<const T*>(p.conv_state)[(b * p.channels + c) * columns + columns + j]);
    }
    // Steps of x are x_step apart: C, or W when x is a window of a packed tensor.
    return Kept(j) ? ToFloat(static_cast<const T*>(p.x)[(b * p.length + j) * p.x_step + c]) : 0.0f;
  }

  __device__ void Store(int64_t t, float v, bool kept) const {
    const float out = kept ? (p.silu ? v / (1.0f + expf(-v)) : v) : 0.0f;
    static_cast<T*>(p.y)[(b * p.length + t) * p.channels + c] = FromFloat<T>(out);
  }

  __device__ void StoreState(int64_t column, float value) const {
    static_cast<T*>(p.new_conv_state)[(b * p.channels + c) * (p.width - 1) + column] = FromFloat<T>(value);
  }
};

// K known at compile time: the window lives in registers and shifts by one per step.
template <typename T, int K>
__device__ void RunChunkUnrolled(const Channel<T>& ch, int64_t t0, int64_t t1) {
  const CausalConvParams& p = ch.p;
  constexpr int kColumns = K - 1;
  float w[K];
#pragma unroll
  for (int k = 0; k < K; ++k) w[k] = p.weight[ch.c * K + k];
  const float bias = p.bias != nullptr ? p.bias[ch.c] : 0.0f;
  float window[kColumns > 0 ? kColumns : 1];
#pragma unroll
  for (int i = 0; i < kColumns; ++i) window[i] = ch.Input(t0 - kColumns + i);
  const auto advance = [&](int64_t t, float newest, bool kept) {
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < kColumns; ++k) acc = fmaf(w[k], window[k], acc);
    acc = fmaf(w[K - 1], newest, acc);
    ch.Store(t, acc + bias, kept);
#pragma unroll
    for (int i = 0; i + 1 < kColumns; ++i) window[i] = window[i + 1];
    if constexpr (kColumns > 0) window[kColumns - 1] = newest;
  };
  if (t1 - t0 == kChunk) {
    // A whole chunk: every input and mask entry is loaded before the first is used, so
    // the thread waits on memory once per chunk, not once per step (a warp alone on its
    // scheduler cannot hide a load per step).
    float inputs[kChunk];
    bool kept[kChunk];
#pragma unroll
    for (int i = 0; i < kChunk; ++i) {
      kept[i] = ch.Kept(t0 + i);
      inputs[i] = ch.Input(t0 + i);
    }
#pragma unroll
    for (int i = 0; i < kChunk; ++i) advance(t0 + i, inputs[i], kept[i]);
  } else {
    for (int64_t t = t0; t < t1; ++t) advance(t, ch.Input(t), ch.Kept(t));
  }
  if (t1 == p.length) {
#pragma unroll
    for (int i = 0; i < kColumns; ++i) ch.StoreState(i, window[i]);
  }
}

// Any K: each step reads its K inputs from memory (cached: neighbouring steps share them).
template <typename T>
__device__ void RunChunkGeneric(const Channel<T>& ch, int64_t t0, int64_t t1) {
  const CausalConvParams& p = ch.p;
  const int64_t columns = p.width - 1;
  const float* w = p.weight + ch.c * p.width;
  const float bias = p.bias != nullptr ? p.bias[ch.c] : 0.0f;
  for (int64_t t = t0; t < t1; ++t) {
    float acc = 0.0f;
    for (int64_t k = 0; k < p.width; ++k) acc = fmaf(w[k], ch.Input(t + k - columns), acc);
    ch.Store(t, acc + bias, ch.Kept(t));
  }
  if (t1 == p.length) {
    for (int64_t i = 0; i < columns; ++i) ch.StoreState(i, ch.Input(p.length + i - columns));
  }
}

template <typename T, int K>
// __grid_constant__: the threads read the parameters in place (by reference) without a
// per-thread copy.
__global__ void __launch_bounds__(kThreads)
    CausalConvKernel(const __grid_constant__ CausalConvParams p, int64_t chunks, int64_t tiles) {
  ReleaseNextKernel();
  WaitForPreviousKernel();
  const int64_t channel_blocks = (p.channels + kThreads - 1) / kThreads;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t c = (tile % channel_blocks) * kThreads + threadIdx.x;
    const int64_t chunk = (tile / channel_blocks) % chunks;
    const int64_t b = tile / channel_blocks / chunks;
    if (c >= p.channels) continue;
    const Channel<T> ch{p, b, c};
    const int64_t t0 = chunk * kChunk;
    const int64_t t1 = t0 + kChunk < p.length ? t0 + kChunk : p.length;
    if constexpr (K > 0) {
      RunChunkUnrolled<T, K>(ch, t0, t1);
    } else {
      RunChunkGeneric<T>(ch, t0, t1);
    }
  }
}

template <typename T>
cudaError_t LaunchTyped(const CausalConvParams& p, cudaStream_t stream) {
  // L = 0 still takes one (empty) chunk per row: it writes new_conv_state.
  const int64_t chunks = std::max<int64_t>(1, (p.length + kChunk - 1) / kChunk);
  const int64_t tiles = p.batch * chunks * ((p.channels + kThreads - 1) / kThreads);
  if (tiles == 0) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>(std::min(tiles, kMaxBlocks));
  auto launch = [&](auto kernel) { return LaunchKernel(kernel, blocks, kThreads, 0, stream, p, chunks, tiles); };
  static_assert(kMaxUnrolledWidth == 4, "the switch below unrolls K = 1..4");
  switch (p.width) {
    case 1: return launch(CausalConvKernel<T, 1>);
    case 2: return launch(CausalConvKernel<T, 2>);
    case 3: return launch(CausalConvKernel<T, 3>);
    case 4: return launch(CausalConvKernel<T, 4>);
    default: return launch(CausalConvKernel<T, 0>);
  }
}

}  // namespace

cudaError_t LaunchCausalConvCuda(const CausalConvParams& params, cudaStream_t stream) {
  switch (params.dtype) {
    case ConvDType::kFloat32: return LaunchTyped<float>(params, stream);
    case ConvDType::kFloat16: return LaunchTyped<__half>(params, stream);
    case ConvDType::kBFloat16: return LaunchTyped<__nv_bfloat16>(params, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace mamba_export_ops
