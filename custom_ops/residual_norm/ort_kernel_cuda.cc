// The CUDA branch of the ResidualRMSNorm binding (built with MAMBA_EXPORT_WITH_CUDA=ON):
// launches the kernel on ORT's compute stream. It neither synchronises, allocates nor
// copies to the host; launch errors come back to ORT as a status.
#include <cuda_runtime_api.h>

#include "common/dependent_launch.h"
#include "mamba_export_ops/residual_norm.h"
#include "mamba_export_ops/status.h"
#include "residual_norm/cuda.h"
#include "residual_norm/ort_kernel.h"

namespace mamba_export_ops {

OrtStatus* RunNormOnCuda(const ResidualNormParams& params, const Ort::KernelContext& context) {
  // No values means empty outputs; a launch with an empty grid would be an error.
  if (params.rows * params.hidden == 0) return nullptr;
  auto stream = static_cast<cudaStream_t>(context.GetGPUComputeStream());
  const DependentLaunchScope scope(params.rows);
  const cudaError_t error = LaunchResidualNormCuda(params, stream);
  if (error != cudaSuccess) {
    return MakeStatus(ORT_EP_FAIL, StrCat(kResidualNormOpType, ": CUDA kernel launch failed: ",
                                          cudaGetErrorName(error), ": ", cudaGetErrorString(error)));
  }
  return nullptr;
}

}  // namespace mamba_export_ops
