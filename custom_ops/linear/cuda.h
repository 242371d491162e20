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

// Output columns a block of the tensor-core kernel owns: 0 for the kernel's own choice (32 up to
// kLinearTileWideRows rows, 16 past them, as measured fastest); scripts/bench_decode_products.cu
// forces 16 or 32 to time the other.
struct LinearTileShape {
  int columns = 0;
  int max_splits = 8;  // blocks of a cluster that may split K where columns alone make few blocks (1 to 8)
};

// Whether x and the weight are aligned for the tensor-core kernel (16 bytes).
bool LinearTileAligned(const LinearParams& params);

// The tensor-core kernel of cuda_tile.cu for up to kLinearTileRows rows in float16 or bfloat16, K a
// multiple of kLinearTileInnerMultiple, aligned (LinearTileAligned); launched as a dependent where
// dependent launches apply. Other calls are refused with cudaErrorInvalidValue.
cudaError_t LaunchLinearTileCuda(const LinearParams& params, cudaStream_t stream,
                                 const LinearTileShape& shape = LinearTileShape());

// More rows, float32, or K not a multiple of 8: cuBLAS (cublas.cc), found in the process at run time.
std::string RunLinearCublas(const LinearParams& params, cudaStream_t stream);

}  // namespace mamba_export_ops
