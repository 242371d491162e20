// The CUDA kernel of CausalConv1d. One thread owns V consecutive channels of one batch
// row over a chunk of time steps: it loads the K - 1 inputs before its chunk (from x
// or conv_state), then walks time keeping them in registers, so each input is read
// from memory once per chunk. Consecutive threads take consecutive channel groups, the
// inner dimension of x and y, so every load and store of a warp is coalesced. The grid is
// (blocks of channel groups, time chunks, batch rows), the last two walked with grid-stride
// loops past 65535, so any B * L fits and no thread divides to find its tile; where every
// offset fits 32 bits the index arithmetic is 32-bit (common/index_width.h). The thread of a
// row's last chunk writes new_conv_state.
//
// From a whole 16-step chunk up, where the rows of x and y allow it (K <= 4, C and x's row
// stride multiples of V, both pointers aligned), a thread takes V = 8 bytes of channels (4
// in half precision, 2 in float32) and moves them as one word; otherwise (decode among
// them) V = 1. A whole chunk's inputs and mask
// entries are loaded before the first is used: the loads do not wait on each other (x
// is loaded unconditionally and the mask selects after), so a thread waits on memory
// once per chunk. Each channel's arithmetic is the same whatever V: the same bits.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "causal_conv/cuda.h"
#include "common/cuda_convert.cuh"
#include "common/cuda_fast_math.cuh"
#include "common/cuda_launch.cuh"
#include "common/index_width.h"

namespace mamba_export_ops {
namespace {

constexpr int kThreads = 128;         // channel groups per block
constexpr int kChunk = 32;            // time steps per thread, one channel a thread
constexpr int kVectorChunk = 16;      // time steps per thread, V channels a thread (a chunk's inputs: V x the registers)
constexpr int kVectorBytes = 8;       // the word a thread moves per step where the rows allow it
constexpr int kMaxUnrolledWidth = 4;  // K = 1..4 keep their window in registers; wider K reads memory

// V consecutive elements of T, loaded and stored as one word.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// Stores a pack as one instruction (a plain assignment of the struct is split into its elements).
template <typename T, int V>
__device__ __forceinline__ void StoreWord(T* to, const Pack<T, V>& pack) {
  if constexpr (sizeof(pack) == 8) {
    unsigned words[2];
    static_assert(sizeof(words) == sizeof(pack), "two 32-bit words");
    memcpy(words, &pack, sizeof(words));
    asm volatile("st.global.v2.b32 [%0], {%1, %2};" ::"l"(to), "r"(words[0]), "r"(words[1]) : "memory");
  } else {
    *reinterpret_cast<Pack<T, V>*>(to) = pack;
  }
}

// V consecutive channels from channel c of one batch row, with the window's inputs
// addressed by the step of x they belong to (negative steps are conv_state's columns). I: the
// index type, int32_t where every offset of the call fits (ConvLastOffset, common/index_width.h).
template <typename T, int V, typename I>
struct Group {
  const CausalConvParams& p;
  I b;
  I c;
  I length;
  I channels;
  I x_step;
  I columns;  // K - 1

  __device__ Group(const CausalConvParams& params, I row, I channel)
      : p(params), b(row), c(channel), length(static_cast<I>(params.length)),
        channels(static_cast<I>(params.channels)), x_step(static_cast<I>(params.x_step)),
        columns(static_cast<I>(params.width - 1)) {}

  __device__ bool Kept(I t) const { return p.mask == nullptr || p.mask[b * length + t] != 0; }

  // Step t >= 0 of x as stored (masked positions too: the caller selects). Steps of x are
  // x_step apart: C, or W when x is a window of a packed tensor.
  __device__ Pack<T, V> Load(I t) const {
    return *reinterpret_cast<const Pack<T, V>*>(static_cast<const T*>(p.x) + (b * length + t) * x_step + c);
  }

  // A loaded step as float32 under its mask: a select, so a dropped input is exactly 0
  // whatever it holds.
  __device__ static void Select(const Pack<T, V>& raw, bool kept, float (&out)[V]) {
#pragma unroll
    for (int v = 0; v < V; ++v) out[v] = kept ? ToFloat(raw.v[v]) : 0.0f;
  }

  // The window entries of step j (j < 0: conv_state's columns) as float32.
  __device__ void Input(I j, float (&out)[V]) const {
    if (j >= 0) {
      Select(Load(j), Kept(j), out);
      return;
    }
#pragma unroll
    for (int v = 0; v < V; ++v) {
      out[v] = p.conv_state == nullptr
                   ? 0.0f
                   : ToFloat(static_cast<const T*>(p.conv_state)[(b * channels + c + v) * columns + columns + j]);
    }
  }

  __device__ void Store(I t, const float (&value)[V], bool kept) const {
    Pack<T, V> out;
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const float x = value[v];
      out.v[v] = FromFloat<T>(kept ? (p.silu ? FastSilu(x) : x) : 0.0f);
    }
    StoreWord(static_cast<T*>(p.y) + (b * length + t) * channels + c, out);
  }

  __device__ void StoreState(int v, I column, float value) const {
    static_cast<T*>(p.new_conv_state)[(b * channels + c + v) * columns + column] = FromFloat<T>(value);
  }
};

// K known at compile time: the window lives in registers and shifts by one per step.
template <typename T, int K, int V, int Chunk, typename I>
__device__ void RunChunkUnrolled(const Group<T, V, I>& g, I t0, I t1) {
  const CausalConvParams& p = g.p;
  constexpr int kColumns = K - 1;
  float w[V][K];
  float bias[V];
#pragma unroll
  for (int v = 0; v < V; ++v) {
#pragma unroll
    for (int k = 0; k < K; ++k) w[v][k] = p.weight[(g.c + v) * K + k];
    bias[v] = p.bias != nullptr ? p.bias[g.c + v] : 0.0f;
  }
  float window[V][kColumns > 0 ? kColumns : 1];
#pragma unroll
  for (int i = 0; i < kColumns; ++i) {
    float entry[V];
    g.Input(t0 - kColumns + i, entry);
#pragma unroll
    for (int v = 0; v < V; ++v) window[v][i] = entry[v];
  }
  const auto advance = [&](I t, const float (&newest)[V], bool kept) {
    float out[V];
#pragma unroll
    for (int v = 0; v < V; ++v) {
      float acc = 0.0f;
#pragma unroll
      for (int k = 0; k < kColumns; ++k) acc = fmaf(w[v][k], window[v][k], acc);
      acc = fmaf(w[v][K - 1], newest[v], acc);
      out[v] = acc + bias[v];
#pragma unroll
      for (int i = 0; i + 1 < kColumns; ++i) window[v][i] = window[v][i + 1];
      if constexpr (kColumns > 0) window[v][kColumns - 1] = newest[v];
    }
    g.Store(t, out, kept);
  };
  if (t1 - t0 == Chunk) {
    // A whole chunk: every input and mask entry is loaded before the first is used, so
    // the thread waits on memory once per chunk, not once per step (a warp alone on its
    // scheduler cannot hide a load per step).
    Pack<T, V> inputs[Chunk];
    bool kept[Chunk];
#pragma unroll
    for (int i = 0; i < Chunk; ++i) {
      kept[i] = g.Kept(t0 + i);
      inputs[i] = g.Load(t0 + i);
    }
#pragma unroll
    for (int i = 0; i < Chunk; ++i) {
      float newest[V];
      Group<T, V, I>::Select(inputs[i], kept[i], newest);
      advance(t0 + i, newest, kept[i]);
    }
  } else {
    for (I t = t0; t < t1; ++t) {
      const bool kept = g.Kept(t);
      float newest[V];
      Group<T, V, I>::Select(g.Load(t), kept, newest);
      advance(t, newest, kept);
    }
  }
  if (t1 == g.length) {
#pragma unroll
    for (int v = 0; v < V; ++v) {
#pragma unroll
      for (int i = 0; i < kColumns; ++i) g.StoreState(v, i, window[v][i]);
    }
  }
}

// Any K, one channel: each step reads its K inputs from memory (cached: neighbouring
// steps share them).
template <typename T, typename I>
__device__ void RunChunkGeneric(const Group<T, 1, I>& g, I t0, I t1) {
  const CausalConvParams& p = g.p;
  const I columns = g.columns;
  const float* w = p.weight + g.c * (columns + 1);
  const float bias = p.bias != nullptr ? p.bias[g.c] : 0.0f;
  for (I t = t0; t < t1; ++t) {
    float acc = 0.0f;
    for (I k = 0; k <= columns; ++k) {
      float entry[1];
      g.Input(t + k - columns, entry);
      acc = fmaf(w[k], entry[0], acc);
    }
    const float out[1] = {acc + bias};
    g.Store(t, out, g.Kept(t));
  }
  if (t1 == g.length) {
    for (I i = 0; i < columns; ++i) {
      float entry[1];
      g.Input(g.length + i - columns, entry);
      g.StoreState(0, i, entry[0]);
    }
  }
}

// Blocks along x take kThreads channel groups, along y time chunks, along z batch rows (y and z
// grid-strided past the grid's extent): no thread divides to find its tile.
template <typename T, int K, int V, int Chunk, typename I>
// __grid_constant__: the threads read the parameters in place (by reference) without a
// per-thread copy.
__global__ void __launch_bounds__(kThreads)
    CausalConvKernel(const __grid_constant__ CausalConvParams p, I chunks) {
  ReleaseNextKernel();
  WaitForPreviousKernel();
  const I groups = static_cast<I>(p.channels) / V;
  const I group = static_cast<I>(blockIdx.x) * kThreads + static_cast<I>(threadIdx.x);
  if (group >= groups) return;  // no block-wide steps follow
  const I batch = static_cast<I>(p.batch), length = static_cast<I>(p.length);
  for (I b = static_cast<I>(blockIdx.z); b < batch; b += static_cast<I>(gridDim.z)) {
    for (I chunk = static_cast<I>(blockIdx.y); chunk < chunks; chunk += static_cast<I>(gridDim.y)) {
      const Group<T, V, I> g(p, b, group * V);
      const I t0 = chunk * Chunk;
      const I t1 = t0 + Chunk < length ? t0 + Chunk : length;
      if constexpr (K > 0) {
        RunChunkUnrolled<T, K, V, Chunk, I>(g, t0, t1);
      } else {
        RunChunkGeneric<T, I>(g, t0, t1);
      }
    }
  }
}

// The largest element offset (or product of indices) the kernel computes for a call: where it
// is below 2^31 the kernel's index arithmetic is 32-bit (common/index_width.h).
inline int64_t ConvLastOffset(const CausalConvParams& p, int64_t chunk) {
  const int64_t chunks = std::max<int64_t>(1, (p.length + chunk - 1) / chunk);
  const int64_t offsets[] = {(p.batch * p.length + 1) * p.x_step + p.channels,  // x, its window's last row
                             p.batch * p.length * p.channels, p.batch * p.channels * p.width, p.batch * p.length,
                             p.channels * p.width, (chunks + 1) * chunk};
  int64_t last = 0;
  for (const int64_t offset : offsets) {
    if (offset < 0) return -1;
    last = std::max(last, offset);
  }
  return last;
}

template <typename T, int V, int Chunk, typename I>
cudaError_t LaunchIndexed(const CausalConvParams& p, cudaStream_t stream) {
  // L = 0 still takes one (empty) chunk per row: it writes new_conv_state.
  const int64_t chunks = std::max<int64_t>(1, (p.length + Chunk - 1) / Chunk);
  const int64_t group_blocks = (p.channels / V + kThreads - 1) / kThreads;
  if (group_blocks == 0 || p.batch == 0) return cudaSuccess;
  if (group_blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
  const dim3 grid(static_cast<unsigned>(group_blocks), static_cast<unsigned>(std::min<int64_t>(chunks, 65535)),
                  static_cast<unsigned>(std::min<int64_t>(p.batch, 65535)));
  auto launch = [&](auto kernel) {
    return LaunchKernel(kernel, grid, kThreads, 0, stream, p, static_cast<I>(chunks));
  };
  static_assert(kMaxUnrolledWidth == 4, "the switch below unrolls K = 1..4");
  switch (p.width) {
    case 1: return launch(CausalConvKernel<T, 1, V, Chunk, I>);
    case 2: return launch(CausalConvKernel<T, 2, V, Chunk, I>);
    case 3: return launch(CausalConvKernel<T, 3, V, Chunk, I>);
    case 4: return launch(CausalConvKernel<T, 4, V, Chunk, I>);
    default:
      if constexpr (V == 1) return launch(CausalConvKernel<T, 0, 1, Chunk, I>);
      return cudaErrorInvalidValue;  // the launcher below keeps wider K on one channel a thread
  }
}

template <typename T, int V, int Chunk>
cudaError_t LaunchShaped(const CausalConvParams& p, cudaStream_t stream) {
  if (TakesNarrowIndex(ConvLastOffset(p, Chunk))) return LaunchIndexed<T, V, Chunk, int32_t>(p, stream);
  return LaunchIndexed<T, V, Chunk, int64_t>(p, stream);
}

template <typename T>
cudaError_t LaunchTyped(const CausalConvParams& p, cudaStream_t stream) {
  constexpr int kVector = kVectorBytes / sizeof(T);
  // Words only from a whole chunk up: at decode (L = 1) a thread of words would read and write
  // its 4 x (K - 1) state entries element by element, 24 bytes apart across the warp.
  const bool vector = p.length >= kVectorChunk && p.width <= kMaxUnrolledWidth && p.channels % kVector == 0 &&
                      p.x_step % kVector == 0 &&
                      reinterpret_cast<uintptr_t>(p.x) % kVectorBytes == 0 &&
                      reinterpret_cast<uintptr_t>(p.y) % kVectorBytes == 0;
  return vector ? LaunchShaped<T, kVector, kVectorChunk>(p, stream) : LaunchShaped<T, 1, kChunk>(p, stream);
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
