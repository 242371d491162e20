// The device-to-host copy of common/host_copy.h.
#include <cuda_runtime.h>

#include "common/host_copy.h"

namespace mamba_export_ops {

int CopyDeviceToHost(void* target, const void* source, size_t bytes, int device) {
  if (bytes == 0) return static_cast<int>(cudaSuccess);
  int current = -1;
  cudaError_t error = cudaGetDevice(&current);
  if (error == cudaSuccess && current != device) error = cudaSetDevice(device);
  if (error == cudaSuccess) error = cudaMemcpy(target, source, bytes, cudaMemcpyDeviceToHost);
  if (error != cudaSuccess) (void)cudaGetLastError();  // the error goes back to the caller, not to the next call
  return static_cast<int>(error);
}

}  // namespace mamba_export_ops
