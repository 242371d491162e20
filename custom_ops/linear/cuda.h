// The CUDA launchers of Linear. Both run on the stream they are given and allocate nothing
// per call; errors come back as text for the caller to turn into an OrtStatus ("" is success).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "linear/params.h"

namespace mamba_export_ops {

// How the matrix-vector kernel spreads a call over the GPU. The defaults are what the op runs;
// scripts/bench_decode_products.cu times others (the products of larger models stream more bytes
// than the latency-bound ones of mamba-130m, and may want more pieces in flight per lane).
struct LinearVectorShape {
  int group = 4;            // 16-byte pieces of the weight each lane has in flight: 4 or 8
  int pieces_per_lane = 2;  // lanes per column: the fewest that leave each at most this many pieces
  int blocks_per_multiprocessor = 0;  // 0: a grid that covers every column once; else at most this
                                      // many blocks per multiprocessor, whose warps walk the columns
};

// Rows up to kLinearVectorRows: the matrix-vector kernel of cuda.cu, launched as a dependent of
// the kernel before it where dependent launches apply (common/dependent_launch.h).
cudaError_t LaunchLinearVectorCuda(const LinearParams& params, cudaStream_t stream,
                                   const LinearVectorShape& shape = LinearVectorShape());

// More rows: cuBLAS (cublas.cc), found in the process at run time.
std::string RunLinearCublas(const LinearParams& params, cudaStream_t stream);

}  // namespace mamba_export_ops
