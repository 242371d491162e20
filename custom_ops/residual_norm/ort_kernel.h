// The ONNX Runtime binding of ResidualRMSNorm: the op definition ORT registers and the
// kernel it runs. The kernel reads the tensors, checks them with validate.h, fills
// ResidualNormParams and hands them to a provider's runner (CPU or CUDA).
#pragma once

#include <onnxruntime_cxx_api.h>

#include "common/ort_binding.h"
#include "residual_norm/params.h"

namespace mamba_export_ops {

// Computes a validated norm whose outputs are allocated; returns nullptr or an error.
using NormRunner = OrtStatus* (*)(const ResidualNormParams& params, const Ort::KernelContext& context);

// On the session's intra-op threads.
OrtStatus* RunNormOnCpu(const ResidualNormParams& params, const Ort::KernelContext& context);
// On ORT's CUDA compute stream; defined in ort_kernel_cuda.cc, built only with CUDA.
OrtStatus* RunNormOnCuda(const ResidualNormParams& params, const Ort::KernelContext& context);

class ResidualNormKernel {
 public:
  ResidualNormKernel(float epsilon, NormRunner runner) : epsilon_(epsilon), runner_(runner) {}
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  OrtStatus* Compute(OrtKernelContext* context) const;

  float epsilon_;
  NormRunner runner_;
};

// One registration of ResidualRMSNorm: an execution provider and the I/O dtype T of x,
// weight and y (residual and residual_out are always float32).
class ResidualNormOp : public OrtOpBase<ResidualNormOp, ResidualNormKernel, NormRunner> {
 public:
  ResidualNormOp(const char* execution_provider, ONNXTensorElementDataType io_type, NormRunner runner);

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  ONNXTensorElementDataType GetInputType(size_t index) const;
  ONNXTensorElementDataType GetOutputType(size_t index) const;
};

}  // namespace mamba_export_ops
