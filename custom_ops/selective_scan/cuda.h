// The CUDA launcher of SelectiveScan. It runs on the stream it is given, allocates
// nothing (the caller lends the scratch memory it asks for), and returns the launch
// status for the caller to turn into an OrtStatus.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "params.h"

namespace mamba_export_ops {

// The device memory a call needs besides its inputs and outputs: 0, except for the projected
// form (delta_weight given) on the chunked paths, whose float32 delta (B, L, D) is computed
// first by a small kernel. The decode path projects inside the scan and needs none.
size_t SelectiveScanCudaScratchBytes(const SelectiveScanParams& params);

// `scratch`: SelectiveScanCudaScratchBytes(params) bytes of device memory (nullptr when 0),
// used only by kernels on `stream`.
cudaError_t LaunchSelectiveScanCuda(const SelectiveScanParams& params, cudaStream_t stream,
                                    void* scratch = nullptr);

}  // namespace mamba_export_ops
