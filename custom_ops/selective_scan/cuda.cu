// The CUDA launcher of SelectiveScan: picks a path and a tile size for the call's
// shape and dtype, and launches one kernel on the caller's stream. It allocates
// nothing and never synchronises, so ONNX Runtime can overlap it with other work.
//
// The projected form (delta_weight given): the sequential path projects inside the scan; the
// chunked paths take a float32 delta that ProjectDeltaKernel writes first into scratch
// memory the caller lends (SelectiveScanCudaScratchBytes).
//
// Paths (see the headers for how each works):
//   sequential (cuda_sequential.cuh): short sequences (decode), N <= 128;
//   chunked    (cuda_chunked.cuh):    everything else, any N; channels last, with the
//              staged loads switched on (cuda_loads.h), cuda_chunked_staged.cuh instead.
// A third path, one state per lane walking the whole sequence (no combine of
// partial scans), measured 1.6 to 1.9 times slower than the chunked scan on an
// H200 at D = 1536, N = 16 (its shared-memory and shuffle traffic per step stall
// it), so it was dropped; see docs/gpu.md.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/index_width.h"
#include "cuda.h"
#include "cuda_channel.cuh"
#include "cuda_chunked.cuh"
#include "cuda_chunked_staged.cuh"
#include "cuda_loads.h"
#include "cuda_sequential.cuh"

namespace mamba_export_ops {
namespace {

using cuda_scan::ChunkedScanKernel;
using cuda_scan::SequentialScanKernel;
using cuda_scan::StagedChunkedScanKernel;

// The mode a process starts in: staged (3.2x to 4.6x faster on mamba-130m to 2.8b shapes, the
// same bits: results/gpu/2026-11-30-kernels/loads_b.json), unless
// MAMBA_EXPORT_SCAN_LOADS=strided (or 0) asks for the strided loads, so a whole run (generate(),
// a benchmark) can compare them without ctypes.
int InitialScanLoads() {
  const char* value = std::getenv("MAMBA_EXPORT_SCAN_LOADS");
  const bool strided = value != nullptr && (std::strcmp(value, "strided") == 0 || std::strcmp(value, "0") == 0);
  return static_cast<int>(strided ? ScanLoads::kStrided : ScanLoads::kStaged);
}

std::atomic<int> g_scan_loads{InitialScanLoads()};

// The lane groups unless the environment asks for the channel kernel, until a GPU round has
// timed it (docs/gpu.md).
int InitialDecodeScan() {
  const char* value = std::getenv("MAMBA_EXPORT_DECODE_SCAN");
  const bool channel = value != nullptr && (std::strcmp(value, "channel") == 0 || std::strcmp(value, "1") == 0);
  return static_cast<int>(channel ? DecodeScan::kChannel : DecodeScan::kLanes);
}

std::atomic<int> g_decode_scan{InitialDecodeScan()};

// Up to this length a step-by-step walk beats the chunked scan, whose warp-wide
// combine costs about as much as a few sequential steps per state index.
constexpr int64_t kSequentialMaxLength = 16;
// The dynamic shared memory a block may have without opting in.
constexpr size_t kDefaultSharedLimit = 48 * 1024;

bool IsAligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// True when the layout is channels first and every row of u, delta, z, y, B and C
// starts on a 16-byte boundary, so whole runs of steps can move as 16-byte vectors.
template <typename T>
bool RowsAreAligned(const SelectiveScanParams& p) {
  // Channels last, a row's steps are D apart: no vector moves along time. Inputs read at
  // an offset (channels last only) are strided windows: never moved as vectors either.
  if (p.layout != kLayoutChannelsFirst) return false;
  if (p.offsets.b != kWholeInput || p.offsets.c != kWholeInput || p.offsets.z != kWholeInput) return false;
  if ((p.length * static_cast<int64_t>(sizeof(T))) % 16 != 0) return false;
  const void* rows[] = {p.u, p.delta, p.B, p.C, p.y};
  for (const void* ptr : rows) {
    if (!IsAligned16(ptr)) return false;
  }
  return p.z == nullptr || IsAligned16(p.z);
}

template <typename T>
cudaError_t LaunchSequential(const SelectiveScanParams& p, cudaStream_t stream) {
  const int lanes = cuda_scan::SequentialLanesPerChannel(p.state);
  int log2_lanes = 0;
  while ((1 << log2_lanes) < lanes) ++log2_lanes;
  if (GetDecodeScan() == DecodeScan::kChannel && p.state <= cuda_scan::kChannelMaxState &&
      p.batch * p.dim >= cuda_scan::kChannelMinRows && p.batch <= 65535) {
    // One thread per (batch, channel), the lane groups' bits (cuda_channel.cuh).
    const dim3 grid(static_cast<unsigned>((p.dim + cuda_scan::kChannelThreads - 1) / cuda_scan::kChannelThreads),
                    static_cast<unsigned>(p.batch));
    const bool vector = p.state % cuda_scan::kStatesPerLane == 0 && IsAligned16(p.A) && IsAligned16(p.last_state) &&
                        (p.initial_state == nullptr || IsAligned16(p.initial_state));
    if (vector) {
      return LaunchKernel(cuda_scan::ChannelScanKernel<T, true>, grid, cuda_scan::kChannelThreads, 0, stream, p, lanes);
    }
    return LaunchKernel(cuda_scan::ChannelScanKernel<T, false>, grid, cuda_scan::kChannelThreads, 0, stream, p, lanes);
  }
  // x: one batch entry's channels; y: batch entries (the kernel strides over y past 65535).
  const int64_t threads = p.dim * lanes;
  const int64_t blocks = (threads + cuda_scan::kSequentialThreads - 1) / cuda_scan::kSequentialThreads;
  if (blocks > INT32_MAX) return cudaErrorInvalidConfiguration;
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(std::min<int64_t>(p.batch, 65535)));
  if (TakesNarrowIndex(cuda_scan::SequentialLastOffset(p))) {
    return LaunchKernel(SequentialScanKernel<T, int32_t>, grid, cuda_scan::kSequentialThreads, 0, stream, p,
                        log2_lanes);
  }
  return LaunchKernel(SequentialScanKernel<T, int64_t>, grid, cuda_scan::kSequentialThreads, 0, stream, p,
                      log2_lanes);
}

// The staged kernel (cuda_chunked_staged.cuh): one block per StagedWarps channels, all of
// one batch entry (StagedLoadsApply holds).
template <typename T, int kItems>
cudaError_t LaunchStagedWith(const SelectiveScanParams& p, cudaStream_t stream) {
  constexpr int kWarps = cuda_scan::StagedWarps<T>();
  const int64_t blocks = p.batch * p.dim / kWarps;
  if (blocks > INT32_MAX) return cudaErrorInvalidConfiguration;
  const size_t shared = cuda_scan::StagedSharedBytes<T, kItems>(p.state);
  if (shared > kDefaultSharedLimit) {
    const cudaError_t raised = cudaFuncSetAttribute(
        StagedChunkedScanKernel<T, kItems>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
    if (raised != cudaSuccess) return raised;
  }
  return LaunchKernel(StagedChunkedScanKernel<T, kItems>, static_cast<unsigned>(blocks),
                      kWarps * cuda_scan::kWarpSize, shared, stream, p);
}

template <typename T, int kItems>
cudaError_t LaunchChunkedWith(const SelectiveScanParams& p, cudaStream_t stream) {
  if (GetScanLoads() == ScanLoads::kStaged && cuda_scan::StagedLoadsApply<T>(p)) {
    return LaunchStagedWith<T, kItems>(p, stream);
  }
  constexpr int kWarps = cuda_scan::ChunkedWarps<T>();
  const int64_t blocks = (p.batch * p.dim + kWarps - 1) / kWarps;
  if (blocks > INT32_MAX) return cudaErrorInvalidConfiguration;
  const size_t shared = cuda_scan::ChunkedSharedBytes<T>(p.state);
  if (shared > kDefaultSharedLimit) {
    // Only very large N get here; the attribute is per function, not per stream.
    const cudaError_t raised = cudaFuncSetAttribute(
        ChunkedScanKernel<T, kItems>, cudaFuncAttributeMaxDynamicSharedMemorySize,
        static_cast<int>(shared));
    if (raised != cudaSuccess) return raised;
  }
  return LaunchKernel(ChunkedScanKernel<T, kItems>, static_cast<unsigned>(blocks), kWarps * cuda_scan::kWarpSize,
                      shared, stream, p, RowsAreAligned<T>(p));
}

// Longer runs per lane amortise the warp-wide combine; shorter ones keep lanes
// busy when the sequence is short.
template <typename T>
cudaError_t LaunchChunked(const SelectiveScanParams& p, cudaStream_t stream) {
  if (p.length <= 4 * cuda_scan::kWarpSize) return LaunchChunkedWith<T, 4>(p, stream);
  if (p.length <= 8 * cuda_scan::kWarpSize) return LaunchChunkedWith<T, 8>(p, stream);
  return LaunchChunkedWith<T, 16>(p, stream);
}

bool TakesSequentialPath(const SelectiveScanParams& p) {
  return p.length <= kSequentialMaxLength && p.state <= cuda_scan::kSequentialMaxState;
}

// The projected form ahead of the chunked paths: out[step, d] = delta_weight[d, :] . x_dt[step, :]
// in float32, summed over r in order. A block takes kProjectChannels channels (a thread each) and
// up to kProjectSteps steps (fewer where their rows would not fit 48 KiB): the steps' x_dt rows
// are staged once in shared memory (every thread reads the same word: a broadcast), and a thread
// holds kProjectRowTerms terms of its weight row in registers while it walks the steps, so a
// weight is read once per block. One block a step, each thread reading its weight row 4 x rank
// bytes away from its neighbour's, took the projected prefill from 5.8 to 14 ms (mamba-130m,
// 2048 tokens: results/gpu/2026-12-01-fused-delta); with this kernel it takes 6.0 ms, the
// plain export 5.1 (results/gpu/2026-12-02-decode-profile).
constexpr int kProjectChannels = 128;
constexpr int kProjectSteps = 32;
constexpr int kProjectRowTerms = 16;

// x_dt rows in shared memory are padded to whole 16-byte words.
__host__ __device__ inline int64_t ProjectRowFloats(int64_t rank) { return (rank + 3) / 4 * 4; }

template <typename T>
__global__ void __launch_bounds__(kProjectChannels)
    ProjectDeltaKernel(const SelectiveScanParams p, float* out, int block_steps) {
  extern __shared__ float4 staged[];  // [block_steps][ProjectRowFloats(rank) / 4]
  ReleaseNextKernel();
  WaitForPreviousKernel();
  const int64_t steps = p.batch * p.length;
  const int64_t step0 = static_cast<int64_t>(blockIdx.x) * block_steps;
  const int count = static_cast<int>(steps - step0 < block_steps ? steps - step0 : block_steps);
  const int64_t row_floats = ProjectRowFloats(p.rank);
  float* x_dt = reinterpret_cast<float*>(staged);
  // A block's staged rows fit 48 KiB, so 32-bit indices; step s of the block starts at
  // (step0 + s) * W, which is ProjectedDeltaRowOffset(p, step / L, step % L) without the divisions.
  const int staged_floats = count * static_cast<int>(row_floats), row_width = static_cast<int>(row_floats);
  const T* rows = static_cast<const T*>(p.delta) + step0 * p.packed.delta;
  for (int i = threadIdx.x; i < staged_floats; i += kProjectChannels) {
    const int s = i / row_width, r = i % row_width;
    x_dt[i] = r < p.rank ? ToFloat(rows[s * p.packed.delta + r]) : 0.0f;
  }
  __syncthreads();
  const int64_t d = static_cast<int64_t>(blockIdx.y) * kProjectChannels + threadIdx.x;
  if (d >= p.dim) return;
  const float* w = p.delta_weight + d * p.rank;
  float sums[kProjectSteps];
#pragma unroll
  for (int s = 0; s < kProjectSteps; ++s) sums[s] = 0.0f;
  for (int64_t r0 = 0; r0 < p.rank; r0 += kProjectRowTerms) {
    float held[kProjectRowTerms];
#pragma unroll
    for (int i = 0; i < kProjectRowTerms; ++i) held[i] = r0 + i < p.rank ? __ldg(w + r0 + i) : 0.0f;
#pragma unroll
    for (int s = 0; s < kProjectSteps; ++s) {
      if (s < count) {
        const float4* x = staged + (s * row_floats + r0) / 4;
#pragma unroll
        for (int q = 0; q < kProjectRowTerms / 4; ++q) {
          if (r0 + 4 * q >= p.rank) break;
          const float4 v = x[q];
          const float values[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            if (r0 + 4 * q + j < p.rank) sums[s] = fmaf(held[4 * q + j], values[j], sums[s]);
          }
        }
      }
    }
  }
#pragma unroll
  for (int s = 0; s < kProjectSteps; ++s) {
    if (s < count) out[(step0 + s) * p.dim + d] = sums[s];
  }
}

template <typename T>
cudaError_t LaunchTyped(const SelectiveScanParams& p, cudaStream_t stream, void* scratch) {
  if (TakesSequentialPath(p)) return LaunchSequential<T>(p, stream);
  if (p.delta_weight == nullptr) return LaunchChunked<T>(p, stream);
  // The projected form: delta first (float32 (B, L, D) in scratch), then the plain scan on it.
  const int64_t steps = p.batch * p.length;
  if (steps == 0) return LaunchChunked<T>(p, stream);
  if (scratch == nullptr) return cudaErrorInvalidValue;
  const size_t row_bytes = static_cast<size_t>(ProjectRowFloats(p.rank)) * sizeof(float);
  const int block_steps = static_cast<int>(std::min<size_t>(kProjectSteps, kDefaultSharedLimit / row_bytes));
  if (block_steps == 0) return cudaErrorInvalidConfiguration;
  const int64_t step_blocks = (steps + block_steps - 1) / block_steps;
  const int64_t channel_blocks = (p.dim + kProjectChannels - 1) / kProjectChannels;
  if (step_blocks > INT32_MAX || channel_blocks > 65535) return cudaErrorInvalidConfiguration;
  const size_t shared = static_cast<size_t>(block_steps) * row_bytes;
  float* projected = static_cast<float*>(scratch);
  const dim3 grid(static_cast<unsigned>(step_blocks), static_cast<unsigned>(channel_blocks));
  if (const cudaError_t error = LaunchKernel(ProjectDeltaKernel<T>, grid, kProjectChannels, shared, stream, p,
                                             projected, block_steps);
      error != cudaSuccess) {
    return error;
  }
  SelectiveScanParams plain = p;
  plain.delta = projected;
  plain.delta_weight = nullptr;
  plain.delta_float32 = true;
  return LaunchChunked<T>(plain, stream);
}

bool GroupsAreValid(int64_t groups, int64_t dim) {
  return groups == 0 || (groups > 0 && dim % groups == 0);
}

}  // namespace

ScanLoads GetScanLoads() { return static_cast<ScanLoads>(g_scan_loads.load(std::memory_order_relaxed)); }

ScanLoads SetScanLoads(ScanLoads loads) {
  return static_cast<ScanLoads>(g_scan_loads.exchange(static_cast<int>(loads)));
}

DecodeScan GetDecodeScan() { return static_cast<DecodeScan>(g_decode_scan.load(std::memory_order_relaxed)); }

DecodeScan SetDecodeScan(DecodeScan scan) {
  return static_cast<DecodeScan>(g_decode_scan.exchange(static_cast<int>(scan)));
}

size_t SelectiveScanCudaScratchBytes(const SelectiveScanParams& p) {
  if (p.delta_weight == nullptr || TakesSequentialPath(p)) return 0;
  return static_cast<size_t>(p.batch * p.length * p.dim) * sizeof(float);
}

cudaError_t LaunchSelectiveScanCuda(const SelectiveScanParams& params, cudaStream_t stream, void* scratch) {
  const SelectiveScanParams& p = params;
  if (p.batch < 0 || p.dim < 0 || p.length < 0 || p.state < 0 || !GroupsAreValid(p.groups_b, p.dim) ||
      !GroupsAreValid(p.groups_c, p.dim)) {
    return cudaErrorInvalidValue;
  }
  // Nothing to compute, and nothing to write: y and last_state are both empty.
  if (p.batch == 0 || p.dim == 0) return cudaSuccess;
  const bool has_rows = p.length > 0;
  if (p.last_state == nullptr || (p.state > 0 && p.A == nullptr) ||
      (has_rows && (p.u == nullptr || p.delta == nullptr || p.y == nullptr ||
                    (p.state > 0 && (p.B == nullptr || p.C == nullptr)))) ||
      (p.delta_weight != nullptr && (p.layout != kLayoutChannelsLast || p.rank < 0 || p.packed.delta < p.rank))) {
    return cudaErrorInvalidValue;
  }
  switch (p.dtype) {
    case ScanDType::kFloat32:
      return LaunchTyped<float>(p, stream, scratch);
    case ScanDType::kFloat16:
      return LaunchTyped<__half>(p, stream, scratch);
    case ScanDType::kBFloat16:
      return LaunchTyped<__nv_bfloat16>(p, stream, scratch);
  }
  return cudaErrorInvalidValue;
}

}  // namespace mamba_export_ops
