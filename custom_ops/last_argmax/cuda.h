// The CUDA launcher of LastArgMax. It runs on the stream it is given, allocates
// nothing, and returns the launch status for the caller to turn into an OrtStatus.
#pragma once

#include <cuda_runtime_api.h>

#include "last_argmax/params.h"

namespace mamba_export_ops {

cudaError_t LaunchLastArgMaxCuda(const LastArgMaxParams& params, cudaStream_t stream);

}  // namespace mamba_export_ops
