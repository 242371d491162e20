// The CUDA branch of the CausalConv1d binding (built with MAMBA_EXPORT_WITH_CUDA=ON):
// launches the kernel on ORT's compute stream. It neither synchronises, allocates nor
// copies to the host; launch errors come back to ORT as a status.
#include <cuda_runtime_api.h>

#include "common/dependent_launch.h"
#include "causal_conv/cuda.h"
#include "causal_conv/ort_kernel.h"
#include "mamba_export_ops/causal_conv.h"
#include "mamba_export_ops/status.h"

namespace mamba_export_ops {

OrtStatus* RunConvOnCuda(const CausalConvParams& params, const Ort::KernelContext& context) {
  // No rows means empty outputs; a launch with an empty grid would be an error.
  if (params.batch * params.channels == 0) return nullptr;
  auto stream = static_cast<cudaStream_t>(context.GetGPUComputeStream());
  const DependentLaunchScope scope(params.batch * params.length);
  const cudaError_t error = LaunchCausalConvCuda(params, stream);
  if (error != cudaSuccess) {
    return MakeStatus(ORT_EP_FAIL, StrCat(kCausalConvOpType, ": CUDA kernel launch failed: ",
                                          cudaGetErrorName(error), ": ", cudaGetErrorString(error)));
  }
  return nullptr;
}

}  // namespace mamba_export_ops
