// The CUDA branch of the SelectiveScan binding (built with MAMBA_EXPORT_WITH_CUDA=ON):
// launches the kernel on ORT's compute stream. It neither synchronises nor copies to
// the host; launch errors come back to ORT as a status.
#include <cuda_runtime_api.h>

#include "mamba_export_ops/contract.h"
#include "mamba_export_ops/status.h"
#include "selective_scan/cuda.h"
#include "selective_scan/ort_kernel.h"

namespace mamba_export_ops {

OrtStatus* RunScanOnCuda(const SelectiveScanParams& params, const Ort::KernelContext& context) {
  // No rows means empty outputs; a launch with an empty grid would be an error.
  if (params.batch * params.dim == 0) return nullptr;
  auto stream = static_cast<cudaStream_t>(context.GetGPUComputeStream());
  const cudaError_t error = LaunchSelectiveScanCuda(params, stream);
  if (error != cudaSuccess) {
    return MakeStatus(ORT_EP_FAIL, StrCat(kSelectiveScanOpType, ": CUDA kernel launch failed: ",
                                          cudaGetErrorName(error), ": ", cudaGetErrorString(error)));
  }
  return nullptr;
}

}  // namespace mamba_export_ops
