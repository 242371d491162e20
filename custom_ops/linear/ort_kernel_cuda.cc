// The CUDA branch of the Linear binding (built with MAMBA_EXPORT_WITH_CUDA=ON): each call through
// the path LinearPathFor picks (the matrix-vector kernel, the tensor-core kernel where x and the
// weight are aligned for it, or cuBLAS), on ORT's compute stream. It neither synchronises nor
// copies to the host.
#include <cuda_runtime_api.h>

#include "common/dependent_launch.h"
#include "linear/cuda.h"
#include "linear/ort_kernel.h"
#include "mamba_export_ops/linear.h"
#include "mamba_export_ops/status.h"

namespace mamba_export_ops {

OrtStatus* RunLinearOnCuda(const LinearParams& params, const Ort::KernelContext& context) {
  if (params.rows * params.outer == 0) return nullptr;  // an empty y
  auto stream = static_cast<cudaStream_t>(context.GetGPUComputeStream());
  const int64_t element_bytes = params.dtype == LinearDType::kFloat32 ? 4 : 2;
  if (params.inner == 0) {  // sums over nothing
    const cudaError_t error =
        cudaMemsetAsync(params.y, 0, static_cast<size_t>(params.rows * params.outer * element_bytes), stream);
    if (error == cudaSuccess) return nullptr;
    return MakeStatus(ORT_EP_FAIL, StrCat(kLinearOpType, ": clearing y failed: ", cudaGetErrorString(error)));
  }
  const LinearPath path = LinearPathFor(params.rows, params.inner, params.outer,
                                        params.outer * params.inner * element_bytes,
                                        params.dtype != LinearDType::kFloat32);
  const bool vector = path == kLinearPathVector;
  if (!vector && !(path == kLinearPathTile && LinearTileAligned(params))) {
    const std::string error = RunLinearCublas(params, stream);
    return error.empty() ? nullptr : MakeStatus(ORT_EP_FAIL, error);
  }
  const DependentLaunchScope scope(params.rows);
  const cudaError_t error = vector ? LaunchLinearVectorCuda(params, stream) : LaunchLinearTileCuda(params, stream);
  if (error != cudaSuccess) {
    return MakeStatus(ORT_EP_FAIL, StrCat(kLinearOpType, ": CUDA kernel launch failed: ", cudaGetErrorName(error),
                                          ": ", cudaGetErrorString(error)));
  }
  return nullptr;
}

}  // namespace mamba_export_ops
