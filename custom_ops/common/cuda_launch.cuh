// Launching our CUDA kernels as programmatic dependents of the kernel before them
// (common/dependent_launch.h says why and how to switch it off).
//
// Every kernel launched with LaunchKernel must call WaitForPreviousKernel() before it
// reads any tensor: until then the kernel before it may still be writing. Nothing is
// read before the wait, not even weights, since any input may be another node's output.
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace mamba_export_ops {

// Dependent launches exist from compute capability 9.0 (Hopper).
constexpr int kDependentLaunchMajor = 9;

// Whether the next launch on the current device should be dependent (dependent_launch.cu).
bool DependentLaunchApplies();
// Records that the current device refused a dependent launch: later launches there are plain.
void DependentLaunchRefused();

// Waits until the kernel this one was launched after has finished and its writes are
// visible. Without a dependent launch (or before sm_90) there is nothing to wait for.
__device__ __forceinline__ void WaitForPreviousKernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the kernel launched after this one as a dependent start now, while this one runs: it
// waits (WaitForPreviousKernel) for this whole kernel to finish before it reads anything, so
// this is safe anywhere. Called first thing, it overlaps the next kernel's launch with this
// one's work. Without a dependent launch after it (or before sm_90) it does nothing.
__device__ __forceinline__ void ReleaseNextKernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// kernel<<<grid, block, shared, stream>>>(args...) in thread-block clusters of `cluster` blocks
// (cluster (1, 1, 1): none), as a dependent launch where it applies.
template <typename... Params, typename... Args>
cudaError_t LaunchClusterKernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream,
                                dim3 cluster, Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = stream;
  cudaLaunchAttribute attributes[2];
  unsigned count = 0;
  const bool clustered = cluster.x * cluster.y * cluster.z > 1;
  if (clustered) {
    attributes[count].id = cudaLaunchAttributeClusterDimension;
    attributes[count].val.clusterDim.x = cluster.x;
    attributes[count].val.clusterDim.y = cluster.y;
    attributes[count].val.clusterDim.z = cluster.z;
    ++count;
  }
  const unsigned plain_count = count;
  if (DependentLaunchApplies()) {
    attributes[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attributes[count].val.programmaticStreamSerializationAllowed = 1;
    ++count;
  }
  config.attrs = attributes;
  config.numAttrs = count;
  const cudaError_t launched = cudaLaunchKernelEx(&config, kernel, args...);
  if (launched == cudaSuccess || count == plain_count) return launched;
  // A driver or context that refuses the dependent launch gets the plain launch, now and (if that
  // works) from then on; an error of the launch itself comes back from the plain one too.
  (void)cudaGetLastError();
  config.numAttrs = plain_count;
  const cudaError_t plain = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  if (plain == cudaSuccess) DependentLaunchRefused();
  return plain;
}

// kernel<<<grid, block, shared, stream>>>(args...), as a dependent launch where it applies.
template <typename... Params, typename... Args>
cudaError_t LaunchKernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream,
                         Args&&... args) {
  return LaunchClusterKernel(kernel, grid, block, shared, stream, dim3(1, 1, 1), std::forward<Args>(args)...);
}

}  // namespace mamba_export_ops
