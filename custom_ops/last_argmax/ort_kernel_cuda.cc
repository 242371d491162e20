// The CUDA branch of the LastArgMax binding (built with MAMBA_EXPORT_WITH_CUDA=ON):
// launches the kernel on ORT's compute stream. It neither synchronises, allocates nor
// copies to the host; launch errors come back to ORT as a status.
#include <cuda_runtime_api.h>

#include "common/dependent_launch.h"
#include "last_argmax/cuda.h"
#include "last_argmax/ort_kernel.h"
#include "mamba_export_ops/last_argmax.h"
#include "mamba_export_ops/status.h"

namespace mamba_export_ops {

OrtStatus* RunArgMaxOnCuda(const LastArgMaxParams& params, const Ort::KernelContext& context) {
  // No sequences means an empty output; a launch with an empty grid would be an error.
  if (params.batch == 0) return nullptr;
  auto stream = static_cast<cudaStream_t>(context.GetGPUComputeStream());
  const DependentLaunchScope scope(params.batch);
  const cudaError_t error = LaunchLastArgMaxCuda(params, stream);
  if (error != cudaSuccess) {
    return MakeStatus(ORT_EP_FAIL, StrCat(kLastArgMaxOpType, ": CUDA kernel launch failed: ",
                                          cudaGetErrorName(error), ": ", cudaGetErrorString(error)));
  }
  return nullptr;
}

}  // namespace mamba_export_ops
