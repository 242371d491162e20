// The CUDA branch of the SelectiveScan binding (built with MAMBA_EXPORT_WITH_CUDA=ON):
// launches the kernel on ORT's compute stream. It neither synchronises nor copies to
// the host; launch errors come back to ORT as a status.
#include <cuda_runtime_api.h>

#include "common/dependent_launch.h"
#include "mamba_export_ops/contract.h"
#include "mamba_export_ops/status.h"
#include "selective_scan/cuda.h"
#include "selective_scan/ort_kernel.h"

namespace mamba_export_ops {

namespace {

// Device memory from the session's CUDA allocator for one call, given back when the call
// returns: ORT's allocator hands a freed block only to later work on the same stream, so the
// kernels queued before the release still own it.
class ScratchMemory {
 public:
  ScratchMemory(const Ort::KernelContext& context, size_t bytes) {
    if (bytes == 0) return;
    const int device = context.GetInput(kInputU).GetTensorMemoryInfo().GetDeviceId();
    const Ort::MemoryInfo info("Cuda", OrtDeviceAllocator, device, OrtMemTypeDefault);
    const OrtMemoryInfo* raw_info = info;
    allocator_ = context.GetAllocator(*raw_info);
    data_ = allocator_->Alloc(allocator_, bytes);
  }
  ~ScratchMemory() {
    if (allocator_ == nullptr) return;
    if (data_ != nullptr) allocator_->Free(allocator_, data_);
    Ort::GetApi().ReleaseAllocator(allocator_);
  }
  ScratchMemory(const ScratchMemory&) = delete;
  ScratchMemory& operator=(const ScratchMemory&) = delete;
  void* data() const { return data_; }

 private:
  OrtAllocator* allocator_ = nullptr;
  void* data_ = nullptr;
};

}  // namespace

OrtStatus* RunScanOnCuda(const SelectiveScanParams& params, const Ort::KernelContext& context) {
  // No rows means empty outputs; a launch with an empty grid would be an error.
  if (params.batch * params.dim == 0) return nullptr;
  auto stream = static_cast<cudaStream_t>(context.GetGPUComputeStream());
  const size_t scratch_bytes = SelectiveScanCudaScratchBytes(params);
  const ScratchMemory scratch(context, scratch_bytes);
  if (scratch_bytes > 0 && scratch.data() == nullptr) {
    return MakeStatus(ORT_EP_FAIL, StrCat(kSelectiveScanOpType, ": could not allocate ", scratch_bytes,
                                          " bytes of CUDA memory for the projected delta"));
  }
  const DependentLaunchScope scope(params.batch * params.length);
  const cudaError_t error = LaunchSelectiveScanCuda(params, stream, scratch.data());
  if (error != cudaSuccess) {
    return MakeStatus(ORT_EP_FAIL, StrCat(kSelectiveScanOpType, ": CUDA kernel launch failed: ",
                                          cudaGetErrorName(error), ": ", cudaGetErrorString(error)));
  }
  return nullptr;
}

}  // namespace mamba_export_ops
