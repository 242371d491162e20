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

// More rows: cuBLAS (cublas.cc), found in the process at run time.
std::string RunLinearCublas(const LinearParams& params, cudaStream_t stream);

}  // namespace mamba_export_ops
