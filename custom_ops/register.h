// Registration of the kernels of one execution provider into the op domain.
#pragma once

#include <onnxruntime_c_api.h>

namespace mamba_export_ops {

// Adds the CUDA kernels (register_cuda.cc, built only with MAMBA_EXPORT_WITH_CUDA=ON).
void AddCudaKernels(OrtCustomOpDomain* domain);

// Adds one op to the domain; throws Ort::Exception on failure.
void AddOp(OrtCustomOpDomain* domain, const OrtCustomOp* op);

}  // namespace mamba_export_ops
