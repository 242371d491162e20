// The ONNX Runtime binding of Linear: the op definition ORT registers and the kernel it runs.
// The kernel reads the tensors, checks them with validate.h, fills LinearParams and hands them
// to a provider's runner (CPU or CUDA).
#pragma once

#include <onnxruntime_cxx_api.h>

#include "common/ort_binding.h"
#include "linear/params.h"

namespace mamba_export_ops {

// Computes a validated product whose output is allocated; returns nullptr or an error.
using LinearRunner = OrtStatus* (*)(const LinearParams& params, const Ort::KernelContext& context);

// On the session's intra-op threads.
OrtStatus* RunLinearOnCpu(const LinearParams& params, const Ort::KernelContext& context);
// On ORT's CUDA compute stream; defined in ort_kernel_cuda.cc, built only with CUDA.
OrtStatus* RunLinearOnCuda(const LinearParams& params, const Ort::KernelContext& context);

class LinearKernel {
 public:
  LinearKernel(bool weight_constant, LinearRunner runner) : weight_constant_(weight_constant), runner_(runner) {}
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  OrtStatus* Compute(OrtKernelContext* context) const;

  bool weight_constant_;  // the node's weight is an initializer
  LinearRunner runner_;
};

// One registration of Linear: an execution provider and the I/O dtype T of x, weight and y.
class LinearOp : public OrtOpBase<LinearOp, LinearKernel, LinearRunner> {
 public:
  LinearOp(const char* execution_provider, ONNXTensorElementDataType io_type, LinearRunner runner);

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  ONNXTensorElementDataType GetInputType(size_t) const { return io_type_; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return io_type_; }
};

}  // namespace mamba_export_ops
