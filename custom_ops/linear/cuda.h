// The CUDA launchers of Linear. Both run on the stream they are given and allocate nothing
// per call; errors come back as text for the caller to turn into an OrtStatus ("" is success).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "linear/params.h"

namespace mamba_export_ops {

// Rows up to kLinearVectorRows: the matrix-vector kernel of cuda.cu, launched as a dependent of
// the kernel before it where dependent launches apply (common/dependent_launch.h).
cudaError_t LaunchLinearVectorCuda(const LinearParams& params, cudaStream_t stream);

// How the tensor-core kernel spreads a call: each block owns 16 output columns, or 32 where N is
// at least wide_columns (0: never). scripts/bench_decode_products.cu times both.
struct LinearTileShape {
  long long wide_columns = 0;
};

// Whether the tensor-core kernel of cuda_tile.cu takes the call: LinearUsesTileKernel, and x and
// the weight 16-byte aligned.
bool LinearTileFits(const LinearParams& params);

// Calls LinearTileFits accepts: the tensor-core kernel, launched as a dependent where dependent
// launches apply. Others are refused with cudaErrorInvalidValue.
cudaError_t LaunchLinearTileCuda(const LinearParams& params, cudaStream_t stream,
                                 const LinearTileShape& shape = LinearTileShape());

// More rows, float32, or K not a multiple of 8: cuBLAS (cublas.cc), found in the process at run time.
std::string RunLinearCublas(const LinearParams& params, cudaStream_t stream);

}  // namespace mamba_export_ops
