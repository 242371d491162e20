// How the tensor-core kernel of Linear adds the sums of blocks that split K (linear/cuda_tile.cu).
//
// Why: products with few column blocks split K over several blocks so that the whole GPU streams
// the weight. The blocks' sums must then be added. A thread-block cluster adds them through
// distributed shared memory, but a clustered launch cost about 1.4 us more a product on the H200
// (results/gpu/2026-12-02-decode-profile/), and mamba-130m's x_proj at batch 32 is one such
// product in every layer. The serial split launches plain blocks instead: each writes its sums to
// a workspace in global memory, and the last block of a column block to arrive adds them in block
// order (the cluster's rank order, so the same bits) and resets the column block's counter.
//
// The workspace belongs to a (device, stream) pair and lives as long as the process, as cuBLAS's
// handles do (kSplitWorkspaceBytes a stream). It is made on the stream's first call outside a CUDA
// graph capture; a call captured before it exists, or one whose sums would not fit, takes the
// cluster. Each call leaves every counter at zero, so calls (and graph replays) on one stream need
// nothing between them: a stream runs its kernels one after another, and a dependent kernel
// touches the workspace only after its wait for the kernel before.
//
// A process-wide switch: mamba_export_ops_set_linear_split (build_info.cc) sets it through ctypes;
// MAMBA_EXPORT_LINEAR_SPLIT=cluster|serial|serial_wide starts a process with that mode. A CUDA
// graph keeps the kernels it captured: switch before a session captures. No CUDA types, so plain
// C++ can include it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mamba_export_ops {

enum class LinearSplit : int {
  kCluster = 0,     // a cluster adds the blocks' sums (products of at most 16 column blocks)
  kSerial = 1,      // the same products; the last block to arrive adds the sums from the workspace
  kSerialWide = 2,  // serial, and products with fewer column blocks than multiprocessors split K too
};

// Defined in linear/split.cu (CUDA builds only).
LinearSplit GetLinearSplit();
LinearSplit SetLinearSplit(LinearSplit mode);  // returns the previous mode

// Bytes of one stream's workspace: its counters, then the blocks' sums.
constexpr size_t kSplitWorkspaceBytes = size_t{4} << 20;
// Column blocks a workspace has counters for.
constexpr int64_t kSplitCounters = 4096;

struct SplitWorkspace {
  float* sums = nullptr;          // (column block, split, output) float32
  unsigned* counters = nullptr;   // kSplitCounters, zero between calls
  int64_t sum_capacity = 0;       // floats `sums` holds
};

// The workspace of the current device and `stream` (a cudaStream_t), made now if it does not exist
// and the stream is not capturing. False if there is none to use: then the caller takes the cluster.
bool FindSplitWorkspace(void* stream, SplitWorkspace* workspace);

// How many (device, stream) pairs have a workspace: tests ask it to know the serial split ran.
int SplitWorkspaceCount();

}  // namespace mamba_export_ops
