// The tensor-core kernel of Linear, for decode at batch sizes past the matrix-vector kernel's
// rows: y (M, N) = x (M, K) weight (N, K)^T with M at most kLinearTileRows, float16 or bfloat16.
//
// Why: at these sizes a product still streams its weight once and does little arithmetic, so its
// cost is the weight's bytes and the launch; cuBLAS's kernels cannot be launched as dependents of
// the kernel before them, and at batch 32 they took 0.44 of a 0.81 ms mamba-130m step on the H200
// (results/gpu/2026-12-01-linear/). This kernel is launched as a dependent and reads its first
// pieces of the weight (an initializer) before it waits for the kernel before it.
//
// Each block owns 16 or 32 output columns (LinearTileShape), as two or four tiles of 8 for
// mma.sync m16n8k16 (float32 sums), and all M rows as one or two tiles of 16. Its kTileWarps warps
// split K, each taking a run of steps of 32 with kGroup steps' loads in flight at once, and add
// their sums through shared memory at the end. A step is one 16-byte piece per lane of each weight
// row and of each x row: lane (g, t) (g = lane / 4, t = lane % 4) reads k = 8t .. 8t+7 of the step
// from weight row g of each column tile and from x rows g and g + 8 of each row tile. The mma's k
// order within the step is a permutation of the physical one (its k pair (2t, 2t+1) of half-step s
// is physical 8t + 4s + {0, 1}, its pair (2t+8, 2t+9) is 8t + 4s + {2, 3}), the same for x and the
// weight, so the sum is the same set of products. Rows of x past M, columns past N and k past K
// read as zeros. Requires K a multiple of 8 and x and the weight 16-byte aligned
// (LinearTileAligned); the binding sends other calls to cuBLAS.
//
// Few columns make few blocks (mamba-1.4b's x_proj, N = 160 and K = 4,096, is 5 blocks of 32
// columns, 10 of 16): then the grid's second dimension splits K too, into a
// thread-block cluster of up to kMaxSplits blocks per column block, and the blocks of a cluster add
// their sums through distributed shared memory (each block reads its share of the outputs from
// every block's shared memory, in rank order, so the sums' order is fixed).
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>

#include "common/cuda_convert.cuh"
#include "common/cuda_launch.cuh"
#include "linear/cuda.h"
#include "mamba_export_ops/linear.h"

namespace mamba_export_ops {
namespace {

constexpr int kTileWarps = 8;
constexpr int kTileThreads = kTileWarps * 32;
constexpr int kStepK = 32;   // k per step: 4 lanes x 8 values
constexpr int kPieceK = 8;   // values in a 16-byte piece
constexpr int kGroup = 4;    // steps whose loads a warp has in flight at once
constexpr int kMaxSplits = 8;  // blocks of a cluster that split K (8: the portable cluster size)
// Column blocks up to which K is split. Measured on the H200 (results/gpu/2026-12-01-split/): x_proj
// (N = 160, K = 4,096: 5 or 10 blocks) took 139 us a mamba-1.4b step split 8 ways against 302 unsplit;
// products of 24 to 192 blocks ran slower split than not (mamba-130m's in_proj, 96 blocks split 3
// ways: 170 us against 50), the cluster's exchange costing more than the blocks it adds.
constexpr int64_t kSplitMaxBlocks = 16;
// One row of a narrow weight (the contract's N <= kLinearTileSplitColumns) is one such product.
static_assert(kSplitMaxBlocks * 32 == kLinearTileSplitColumns, "a narrow weight's 32-column blocks are split");

struct alignas(16) Piece {
  uint32_t w[4];  // 8 values of 16 bits, two to a word
};

__device__ __forceinline__ Piece LoadPiece(const void* base, int64_t element, bool valid) {
  Piece piece = {{0u, 0u, 0u, 0u}};
  if (valid) piece = *reinterpret_cast<const Piece*>(static_cast<const uint16_t*>(base) + element);
  return piece;
}

// c += a b: a 16x16 tile of x (row-major), b a 16x8 tile of the weight transposed, float32 sums.
template <typename T>
__device__ __forceinline__ void Mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same<T, __half>::value) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
#endif
}

static_assert(kLinearTileRows == 32, "LaunchTyped instantiates one or two row tiles of 16");

// RT row tiles of 16 (M up to 16 RT), CT column tiles of 8 per block; gridDim.y blocks (a cluster)
// split K for each column block.
template <typename T, int RT, int CT>
__global__ void __launch_bounds__(kTileThreads) LinearTileKernel(const __grid_constant__ LinearParams p) {
  constexpr int kColumns = CT * 8;
  constexpr int kOutputs = RT * 16 * kColumns;
  __shared__ float partial[kTileWarps][RT * 16][kColumns];
  ReleaseNextKernel();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int64_t column0 = static_cast<int64_t>(blockIdx.x) * kColumns;
  const int64_t steps = (p.inner + kStepK - 1) / kStepK;
  const int64_t split_steps = (steps + gridDim.y - 1) / gridDim.y;
  const int64_t split_first = static_cast<int64_t>(blockIdx.y) * split_steps;
  const int64_t split_last = split_first + split_steps < steps ? split_first + split_steps : steps;
  const int64_t steps_per_warp = (split_steps + kTileWarps - 1) / kTileWarps;
  const int64_t first = split_first + warp * steps_per_warp;
  const int64_t last = first + steps_per_warp < split_last ? first + steps_per_warp : split_last;

  const void* weight_rows[CT];
  bool has_column[CT];
#pragma unroll
  for (int j = 0; j < CT; ++j) {
    const int64_t n = column0 + 8 * j + g;
    has_column[j] = n < p.outer;
    weight_rows[j] = static_cast<const uint16_t*>(p.weight) + (has_column[j] ? n : 0) * p.inner;
  }
  const auto load_weight = [&](Piece(&into)[CT], int64_t step) {
    const int64_t k = step * kStepK + kPieceK * t;
    const bool valid = step < last && k < p.inner;
#pragma unroll
    for (int j = 0; j < CT; ++j) into[j] = LoadPiece(weight_rows[j], k, valid && has_column[j]);
  };

  float sums[RT][CT][4];
#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int j = 0; j < CT; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) sums[r][j][i] = 0.0f;

  // kGroup steps at a time: every load of the group (weight and x) is issued before the first mma
  // waits on one, so a warp pays one memory latency per group rather than one per step.
  Piece w[kGroup][CT];
  const auto load_weights = [&](int64_t step) {
#pragma unroll
    for (int u = 0; u < kGroup; ++u) load_weight(w[u], step + u);
  };
  if (p.weight_constant) load_weights(first);
  WaitForPreviousKernel();
  for (int64_t step = first; step < last; step += kGroup) {
    if (step != first || !p.weight_constant) load_weights(step);
    Piece a[kGroup][RT][2];
#pragma unroll
    for (int u = 0; u < kGroup; ++u) {
      const int64_t k = (step + u) * kStepK + kPieceK * t;
      const bool k_valid = step + u < last && k < p.inner;
#pragma unroll
      for (int r = 0; r < RT; ++r) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int64_t row = r * 16 + g + 8 * h;
          a[u][r][h] = LoadPiece(p.x, row * p.inner + k, k_valid && row < p.rows);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kGroup; ++u) {
#pragma unroll
      for (int s = 0; s < 2; ++s) {
#pragma unroll
        for (int r = 0; r < RT; ++r) {
#pragma unroll
          for (int j = 0; j < CT; ++j) {
            Mma<T>(sums[r][j], a[u][r][0].w[2 * s], a[u][r][1].w[2 * s], a[u][r][0].w[2 * s + 1],
                   a[u][r][1].w[2 * s + 1], w[u][j].w[2 * s], w[u][j].w[2 * s + 1]);
          }
        }
      }
    }
  }

  // The mma's sums: c0, c1 at row g, columns 2t, 2t+1 of the tile; c2, c3 at row g + 8.
#pragma unroll
  for (int r = 0; r < RT; ++r) {
#pragma unroll
    for (int j = 0; j < CT; ++j) {
#pragma unroll
      for (int i = 0; i < 4; ++i) partial[warp][r * 16 + g + 8 * (i >> 1)][8 * j + 2 * t + (i & 1)] = sums[r][j][i];
    }
  }
  __syncthreads();
  T* y = static_cast<T*>(p.y);
  const auto write = [&](int index, float total) {
    const int row = index / kColumns, column = index % kColumns;
    const int64_t n = column0 + column;
    if (row < p.rows && n < p.outer) y[row * p.outer + n] = FromFloat<T>(total);
  };
  for (int index = threadIdx.x; index < kOutputs; index += kTileThreads) {
    const int row = index / kColumns, column = index % kColumns;
    float total = 0.0f;
#pragma unroll
    for (int v = 0; v < kTileWarps; ++v) total += partial[v][row][column];
    if (gridDim.y == 1) {
      write(index, total);
    } else {
      partial[0][row][column] = total;  // this thread alone read and writes this element
    }
  }
  if (gridDim.y > 1) {
    // The cluster's blocks add their sums: block `rank` writes outputs rank, rank + splits, ... of
    // each run of kTileThreads, reading every block's shared memory in rank order.
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();
    const unsigned splits = cluster.num_blocks(), rank = cluster.block_rank();
    for (int index = static_cast<int>(rank) * kTileThreads + threadIdx.x; index < kOutputs;
         index += static_cast<int>(splits) * kTileThreads) {
      float total = 0.0f;
      for (unsigned q = 0; q < splits; ++q) total += cluster.map_shared_rank(&partial[0][0][0], q)[index];
      write(index, total);
    }
    cluster.sync();  // no block leaves while another still reads its shared memory
  }
}

// The multiprocessors of the current device, asked once per device.
int Multiprocessors() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> known[kMaxDevices];
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kMaxDevices) return 132;
  int count = known[device].load(std::memory_order_relaxed);
  if (count == 0) {
    if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || count <= 0) {
      (void)cudaGetLastError();
      count = 132;
    }
    known[device].store(count, std::memory_order_relaxed);
  }
  return count;
}

template <typename T, int RT, int CT>
cudaError_t LaunchShaped(const LinearParams& p, cudaStream_t stream, int max_splits) {
  const int64_t steps = (p.inner + kStepK - 1) / kStepK;
  const int64_t blocks = (p.outer + CT * 8 - 1) / (CT * 8);
  if (blocks > 0x7fffffff || steps > 0x7fffffff) return cudaErrorInvalidConfiguration;
  // Split K where the columns alone make at most kSplitMaxBlocks blocks: into at most max_splits
  // parts of at least one step each, aiming at two blocks per multiprocessor.
  int64_t splits = 1;
  if (blocks <= kSplitMaxBlocks) {
    const int64_t wanted = (2 * static_cast<int64_t>(Multiprocessors()) + blocks - 1) / blocks;
    splits = std::max<int64_t>(1, std::min<int64_t>({wanted, max_splits, steps}));
  }
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(splits));
  return LaunchClusterKernel(LinearTileKernel<T, RT, CT>, grid, kTileThreads, 0, stream,
                             dim3(1, static_cast<unsigned>(splits), 1), p);
}

template <typename T>
cudaError_t LaunchTyped(const LinearParams& p, cudaStream_t stream, const LinearTileShape& shape) {
  const int columns = shape.columns != 0 ? shape.columns : (p.rows <= kLinearTileWideRows ? 32 : 16);
  if (columns != 16 && columns != 32) return cudaErrorInvalidValue;
  if (shape.max_splits < 1 || shape.max_splits > kMaxSplits) return cudaErrorInvalidValue;
  const bool wide = columns == 32;
  const int splits = shape.max_splits;
  if (p.rows <= 16) return wide ? LaunchShaped<T, 1, 4>(p, stream, splits) : LaunchShaped<T, 1, 2>(p, stream, splits);
  return wide ? LaunchShaped<T, 2, 4>(p, stream, splits) : LaunchShaped<T, 2, 2>(p, stream, splits);
}

}  // namespace

bool LinearTileAligned(const LinearParams& params) {
  return reinterpret_cast<uintptr_t>(params.x) % 16 == 0 && reinterpret_cast<uintptr_t>(params.weight) % 16 == 0;
}

cudaError_t LaunchLinearTileCuda(const LinearParams& params, cudaStream_t stream, const LinearTileShape& shape) {
  static_assert(kLinearTileInnerMultiple == kPieceK, "K must fill whole 16-byte pieces");
  if (params.rows < 1 || params.rows > kLinearTileRows || params.dtype == LinearDType::kFloat32 ||
      params.inner % kPieceK != 0 || !LinearTileAligned(params)) {
    return cudaErrorInvalidValue;
  }
  if (params.outer == 0) return cudaSuccess;
  switch (params.dtype) {
    case LinearDType::kFloat16: return LaunchTyped<__half>(params, stream, shape);
    case LinearDType::kBFloat16: return LaunchTyped<__nv_bfloat16>(params, stream, shape);
    case LinearDType::kFloat32: break;
  }
  return cudaErrorInvalidValue;
}

}  // namespace mamba_export_ops
