// The chunked scan of cuda_chunked.cuh with its channels-last tiles staged through shared
// memory (the "staged" loads of cuda_loads.h, the default where they apply).
//
// Channels last, the plain kernel's lanes read their runs of steps D (or W) elements
// apart: every load of a warp touches 32 sectors, and for B and C that happens once per
// state index n, although B_t and C_t are N contiguous values shared by every channel
// of the batch. Here the block (StagedWarps neighbouring channels of one batch entry)
// first copies each tile into shared memory with coalesced loads:
//   * u, delta and z: the block's four channels of one step are adjacent; where they are
//     aligned, one thread moves them as one word (8 bytes in half precision, 16 in
//     float32), else consecutive threads read consecutive channels;
//   * B and C, kStageStates states at a time: the slice of one step is contiguous; where
//     it is aligned, it moves as 16-byte words, else state by state. The panels hold them
//     widened to float32 (converted once for the block's warps rather than by each warp)
//     and state-major within a lane's run (the kItems steps of one state adjacent), so a
//     lane reads its run of one state as 16-byte words: in half precision 4 loads and no
//     conversions where it took 16 two-byte loads and 16 conversions, for each of B and C,
//     per state and tile. The values are the same, so are the bits.
// At batch 1 a grid holds few warps per multiprocessor, each waiting on its loads, so
// the number of load instructions (8x fewer for B and C in half precision) and the
// block's shared memory (how many blocks fit) set the time more than the arithmetic.
// The warps then read their runs from shared memory. Every lane's run of u, delta or z is
// followed by a pad of one 4-byte word, so the 32 lanes of a warp, reading step i of their
// runs at once, hit 32 different banks; a run of B or C by four floats, so the eight lanes
// of each phase of a 16-byte load hit different banks. The arithmetic is the plain
// kernel's (ScanOneState), so both give the same bits.
//
// The block's channels must share their batch entry and their groups of B and C (the
// panels are the block's): StagedLoadsApply says when that holds.
//
// A float32 delta (the projected form, params.delta_float32) is not staged: each lane reads
// its run of steps straight from global memory, as the plain chunked kernel does.
#pragma once

#include <initializer_list>

#include "cuda_chunked.cuh"

namespace mamba_export_ops {
namespace cuda_scan {

// Channels (warps) per block of the staged kernel: four in every dtype, so a block stages
// B and C for four channels at once (in half precision 1.2x faster than two at batch 1, D =
// 1536, L = 2048: results/gpu/2026-11-30-kernels/). The plain chunked kernel keeps ChunkedWarps.
template <typename T>
__host__ __device__ constexpr int StagedWarps() {
  return 4;
}

template <typename T, int kItems>
struct StagedTile {
  static constexpr int kWarps = StagedWarps<T>();
  static constexpr int kTile = kWarpSize * kItems;
  // States staged at once: 8 in every dtype. Sixteen for half-precision I/O took a block to
  // 40 KiB of shared memory, so only 5 blocks fit on a multiprocessor: at batch 1, D = 1536
  // (768 blocks) the grid ran in two waves, the second one seventh full.
  static constexpr int kStageStates = 8;
  static constexpr int kPad = 4 / static_cast<int>(sizeof(T));  // one 4-byte word, in elements
  // A lane's run of kItems steps of one channel (u, delta, z), then the pad.
  static constexpr int kSeqRun = kItems + kPad;
  static constexpr int kSeqPanel = kWarps * kWarpSize * kSeqRun;
  // A lane's run of B or C in float32: kStageStates runs of kItems steps (one state each,
  // 16-byte aligned: kItems is a multiple of 4), then a pad of four floats.
  static_assert(kItems % 4 == 0, "a lane's run of one state is whole 16-byte words");
  static constexpr int kProjRun = kStageStates * kItems + 4;
  static constexpr int kProjPanel = kWarpSize * kProjRun;
};

// The carries (float), then the B and C panels (float), then u, delta and z (T): each part
// starts 16-byte aligned.
template <typename T, int kItems>
size_t StagedSharedBytes(int64_t state) {
  using Tile = StagedTile<T, kItems>;
  const size_t carry = static_cast<size_t>(2 * StagedWarps<T>()) * static_cast<size_t>(state) * sizeof(float);
  const size_t aligned = (carry + 15) / 16 * 16;
  return aligned + static_cast<size_t>(2 * Tile::kProjPanel) * sizeof(float) +
         static_cast<size_t>(3 * Tile::kSeqPanel) * sizeof(T);
}

// Whether the staged kernel can run this call: channels last, and every block of
// StagedWarps channels inside one batch entry and one group of B and of C.
template <typename T>
bool StagedLoadsApply(const SelectiveScanParams& p) {
  constexpr int64_t kWarps = StagedWarps<T>();
  if (p.layout != kLayoutChannelsLast || p.dim % kWarps != 0) return false;
  for (const int64_t groups : {p.groups_b, p.groups_c}) {
    if (groups > 0 && (p.dim / groups) % kWarps != 0) return false;
  }
  return true;
}

// One 16-byte word of B or C (16 / sizeof(T) states of one step) into a panel, widened to
// float32; state j goes kItems floats after state j - 1 (the panel is state-major). Zeros
// past L.
template <typename T, int kItems>
__device__ __forceinline__ void StageVector(float* panel, bool inside, const T* source) {
  constexpr int kPerVector = 16 / static_cast<int>(sizeof(T));
  uint4 word = make_uint4(0, 0, 0, 0);
  if (inside) word = __ldg(reinterpret_cast<const uint4*>(source));
  const T* values = reinterpret_cast<const T*>(&word);
#pragma unroll
  for (int j = 0; j < kPerVector; ++j) panel[j * kItems] = ToFloat(values[j]);
}

// The word holding a block's channels of one step: 8 bytes (half precision) or 16 (float32).
template <size_t kBytes>
struct StepWordOf;
template <>
struct StepWordOf<4> {
  using type = uint32_t;
};
template <>
struct StepWordOf<8> {
  using type = uint2;
};
template <>
struct StepWordOf<16> {
  using type = uint4;
};

// One step's word of u, delta or z into each channel's run of a panel; zeros past L.
// Channel c's run starts kChannelStride elements after channel c - 1's.
template <typename T, int kChannels, int kChannelStride, typename Word>
__device__ __forceinline__ void StageStep(T* panel, bool inside, const T* source) {
  Word word{};
  if (inside) word = __ldg(reinterpret_cast<const Word*>(source));
  const T* values = reinterpret_cast<const T*>(&word);
#pragma unroll
  for (int c = 0; c < kChannels; ++c) panel[c * kChannelStride] = values[c];
}

// Half precision: at least three blocks a multiprocessor (at most 168 registers; 164 without
// spills with sm_90), as before the float panels (165): left free, the compiler took 194 and
// two blocks, and a batch-1 grid of D = 1536 (384 blocks) then ran in two waves.
template <typename T, int kItems>
__global__ void __launch_bounds__(StagedWarps<T>() * kWarpSize, sizeof(T) == 2 ? 3 : 1)
    StagedChunkedScanKernel(const SelectiveScanParams p) {
  ReleaseNextKernel();
  WaitForPreviousKernel();
  using Tile = StagedTile<T, kItems>;
  constexpr int kWarps = Tile::kWarps;
  constexpr int kThreads = kWarps * kWarpSize;
  constexpr int kStates = Tile::kStageStates;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int64_t N = p.state;
  const int64_t L = p.length;
  float* const carry_shared = reinterpret_cast<float*>(shared_bytes);
  float* const b_panel = reinterpret_cast<float*>(shared_bytes + (2 * kWarps * N * sizeof(float) + 15) / 16 * 16);
  float* const c_panel = b_panel + Tile::kProjPanel;
  T* const u_panel = reinterpret_cast<T*>(c_panel + Tile::kProjPanel);
  T* const delta_panel = u_panel + Tile::kSeqPanel;
  T* const z_panel = delta_panel + Tile::kSeqPanel;

  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  // StagedLoadsApply: D is a multiple of kWarps, so every warp has a channel and the
  // block's channels share b (and their groups of B and C).
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kWarps;
  const int64_t channel = first + warp;
  const int64_t b = first / p.dim;
  const int64_t d0 = first % p.dim;
  const int64_t d = d0 + warp;

  float* const carry = carry_shared + 2 * warp * N;
  for (int64_t n = lane; n < N; n += kWarpSize) {
    carry[n] = p.initial_state != nullptr ? p.initial_state[channel * N + n] : 0.0f;
  }
  __syncwarp();

  // The block's first channel in each sequence tensor; channels are adjacent (stride 1).
  const int64_t row = b * p.seq.batch + d0 * p.seq.dim;
  const T* u_rows = static_cast<const T*>(p.u) + row;
  const T* delta_rows = static_cast<const T*>(p.delta) + row;
  const T* z_rows = p.z != nullptr ? static_cast<const T*>(p.z) + b * p.z_seq.batch + d0 * p.z_seq.dim : nullptr;
  T* y_row = static_cast<T*>(p.y) + b * p.seq.batch + d * p.seq.dim;
  const T* b_rows = static_cast<const T*>(p.B) + ProjectionOffset(p.proj_b, p.groups_b, b, d0, p.dim);
  const T* c_rows = static_cast<const T*>(p.C) + ProjectionOffset(p.proj_c, p.groups_c, b, d0, p.dim);
  const float* a_row = p.A + d * N;
  const float bias = p.delta_bias != nullptr ? p.delta_bias[d] : 0.0f;
  const float skip = p.D != nullptr ? p.D[d] : 0.0f;

  // Whole 16-byte words of B and C (see the B/C loads below): states adjacent, N a multiple of
  // the slice, and every row start 16-byte aligned. The same for every thread of the grid.
  constexpr int kPerVector = 16 / static_cast<int>(sizeof(T));
  constexpr int kVectors = kStates / kPerVector;
  static_assert(kStates % kPerVector == 0, "a slice of B or C is whole 16-byte words");
  const bool whole_vectors = p.proj_b.state == 1 && p.proj_c.state == 1 && N % kStates == 0 &&
                             (p.proj_b.time * static_cast<int64_t>(sizeof(T))) % 16 == 0 &&
                             (p.proj_c.time * static_cast<int64_t>(sizeof(T))) % 16 == 0 &&
                             reinterpret_cast<uintptr_t>(b_rows) % 16 == 0 &&
                             reinterpret_cast<uintptr_t>(c_rows) % 16 == 0;

  // The block's channels of one step as one word, when every row start and step is aligned to it.
  using StepWord = typename StepWordOf<kWarps * sizeof(T)>::type;
  constexpr int kChannelStride = kWarpSize * Tile::kSeqRun;
  const auto word_aligned = [](const void* ptr, int64_t step) {
    return ptr == nullptr || (reinterpret_cast<uintptr_t>(ptr) % sizeof(StepWord) == 0 &&
                              (step * static_cast<int64_t>(sizeof(T))) % static_cast<int64_t>(sizeof(StepWord)) == 0);
  };
  const bool delta_float32 = p.delta_float32;
  const bool step_words = word_aligned(u_rows, p.seq.time) &&
                          (delta_float32 || word_aligned(delta_rows, p.seq.time)) && word_aligned(z_rows, p.z_seq.time);

  int parity = 0;
  for (int64_t tile = 0; tile < L; tile += Tile::kTile) {
    __syncthreads();  // every warp is done with the previous tile's panels
    if (step_words) {
      // u, delta, z: the block's kWarps channels of step t are one word (4 or 16 bytes).
      constexpr auto stage = StageStep<T, kWarps, kChannelStride, StepWord>;
      for (int t = static_cast<int>(threadIdx.x); t < Tile::kTile; t += kThreads) {
        const int at = (t / kItems) * Tile::kSeqRun + t % kItems;
        const bool inside = tile + t < L;
        stage(u_panel + at, inside, u_rows + (tile + t) * p.seq.time);
        if (!delta_float32) stage(delta_panel + at, inside, delta_rows + (tile + t) * p.seq.time);
        if (z_rows != nullptr) stage(z_panel + at, inside, z_rows + (tile + t) * p.z_seq.time);
      }
    } else {
      // u, delta, z: element (step t, channel c) of the tile; consecutive threads take
      // consecutive channels of a step.
      for (int k = static_cast<int>(threadIdx.x); k < Tile::kTile * kWarps; k += kThreads) {
        const int t = k / kWarps, c = k % kWarps;
        const int at = c * kWarpSize * Tile::kSeqRun + (t / kItems) * Tile::kSeqRun + t % kItems;
        const bool inside = tile + t < L;
        u_panel[at] = inside ? u_rows[(tile + t) * p.seq.time + c] : ZeroOf<T>();
        if (!delta_float32) delta_panel[at] = inside ? delta_rows[(tile + t) * p.seq.time + c] : ZeroOf<T>();
        if (z_rows != nullptr) z_panel[at] = inside ? z_rows[(tile + t) * p.z_seq.time + c] : ZeroOf<T>();
      }
    }
    __syncthreads();

    const int64_t t0 = tile + static_cast<int64_t>(lane) * kItems;
    const T* my_seq = u_panel + warp * kWarpSize * Tile::kSeqRun + lane * Tile::kSeqRun;
    const int delta_offset = Tile::kSeqPanel, z_offset = 2 * Tile::kSeqPanel;
    float dt[kItems], dtu[kItems], y[kItems];
    if (delta_float32) {
      LoadFloats<float, kItems>(static_cast<const float*>(p.delta) + b * p.seq.batch + d * p.seq.dim, t0, L,
                                p.seq.time, false, dt);
    } else {
#pragma unroll
      for (int i = 0; i < kItems; ++i) dt[i] = ToFloat(my_seq[delta_offset + i]);
    }
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const float u = ToFloat(my_seq[i]);
      // A step past the end must be the identity (decay 1, input 0).
      dt[i] = (t0 + i < L) ? TimeStep(dt[i], bias, p.delta_softplus) : 0.0f;
      dtu[i] = dt[i] * u;
      y[i] = skip * u;
    }
    const float* carry_in = carry + parity * N;
    float* carry_out = carry + (parity ^ 1) * N;

    for (int64_t n0 = 0; n0 < N; n0 += kStates) {
      if (n0 > 0) __syncthreads();  // every warp is done with the previous slice
      if (whole_vectors) {
        // B and C: the slice's kStates values of one step are 16-byte words in memory, loaded
        // as such (8x fewer loads in half precision, each waited on far less often).
        for (int k = static_cast<int>(threadIdx.x); k < Tile::kTile * kVectors; k += kThreads) {
          const int t = k / kVectors, v = k % kVectors;
          const int at = (t / kItems) * Tile::kProjRun + v * kPerVector * kItems + t % kItems;
          StageVector<T, kItems>(b_panel + at, tile + t < L,
                                 b_rows + (tile + t) * p.proj_b.time + n0 + v * kPerVector);
          StageVector<T, kItems>(c_panel + at, tile + t < L,
                                 c_rows + (tile + t) * p.proj_c.time + n0 + v * kPerVector);
        }
      } else {
        // B and C: element (step t, state n0 + s); consecutive threads take consecutive states.
        for (int k = static_cast<int>(threadIdx.x); k < Tile::kTile * kStates; k += kThreads) {
          const int t = k / kStates, s = k % kStates;
          const int at = (t / kItems) * Tile::kProjRun + s * kItems + t % kItems;
          const bool inside = tile + t < L && n0 + s < N;
          b_panel[at] = inside ? ToFloat(b_rows[(tile + t) * p.proj_b.time + (n0 + s) * p.proj_b.state]) : 0.0f;
          c_panel[at] = inside ? ToFloat(c_rows[(tile + t) * p.proj_c.time + (n0 + s) * p.proj_c.state]) : 0.0f;
        }
      }
      __syncthreads();
      const float* my_b = b_panel + lane * Tile::kProjRun;
      const float* my_c = c_panel + lane * Tile::kProjRun;
      const int states = static_cast<int>(N - n0 < kStates ? N - n0 : kStates);
      for (int s = 0; s < states; ++s) {
        float b_now[kItems];
        float c_now[kItems];
#pragma unroll
        for (int q = 0; q < kItems / 4; ++q) {
          const float4 b4 = reinterpret_cast<const float4*>(my_b + s * kItems)[q];
          const float4 c4 = reinterpret_cast<const float4*>(my_c + s * kItems)[q];
          b_now[4 * q] = b4.x, b_now[4 * q + 1] = b4.y, b_now[4 * q + 2] = b4.z, b_now[4 * q + 3] = b4.w;
          c_now[4 * q] = c4.x, c_now[4 * q + 1] = c4.y, c_now[4 * q + 2] = c4.z, c_now[4 * q + 3] = c4.w;
        }
        const int64_t n = n0 + s;
        const float a2 = __ldg(a_row + n) * kLog2e;
        // B and C are float32 here (widened exactly when staged): the same values as the plain kernel's.
        const float out = ScanOneState<float, kItems>(lane, a2, carry_in[n], dt, dtu, b_now, c_now, y);
        if (lane == 0) carry_out[n] = out;
      }
    }
    if (z_rows != nullptr) {
#pragma unroll
      for (int i = 0; i < kItems; ++i) y[i] *= Silu(ToFloat(my_seq[z_offset + i]));
    }
    StoreFloats<T, kItems>(y_row, t0, L, p.seq.time, false, y);
    parity ^= 1;
    __syncwarp();  // this tile's carries are visible to every lane of the next
  }
  for (int64_t n = lane; n < N; n += kWarpSize) p.last_state[channel * N + n] = carry[parity * N + n];
}

}  // namespace cuda_scan
}  // namespace mamba_export_ops
