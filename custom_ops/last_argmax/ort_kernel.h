// The ONNX Runtime binding of LastArgMax: the op definition ORT registers and the
// kernel it runs. The kernel reads the tensor, checks it with validate.h, fills
// LastArgMaxParams and hands them to a provider's runner (CPU or CUDA).
#pragma once

#include <onnxruntime_cxx_api.h>

#include "common/ort_binding.h"
#include "last_argmax/params.h"

namespace mamba_export_ops {

// Computes a validated argmax whose output is allocated; returns nullptr or an error.
using ArgMaxRunner = OrtStatus* (*)(const LastArgMaxParams& params, const Ort::KernelContext& context);

// On the session's intra-op threads.
OrtStatus* RunArgMaxOnCpu(const LastArgMaxParams& params, const Ort::KernelContext& context);
// On ORT's CUDA compute stream; defined in ort_kernel_cuda.cc, built only with CUDA.
OrtStatus* RunArgMaxOnCuda(const LastArgMaxParams& params, const Ort::KernelContext& context);

class LastArgMaxKernel {
 public:
  explicit LastArgMaxKernel(ArgMaxRunner runner) : runner_(runner) {}
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  OrtStatus* Compute(OrtKernelContext* context) const;

  ArgMaxRunner runner_;
};

// One registration of LastArgMax: an execution provider and the dtype T of logits
// (tokens are always int64).
class LastArgMaxOp : public OrtOpBase<LastArgMaxOp, LastArgMaxKernel, ArgMaxRunner> {
 public:
  LastArgMaxOp(const char* execution_provider, ONNXTensorElementDataType io_type, ArgMaxRunner runner);

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  ONNXTensorElementDataType GetInputType(size_t index) const;
  ONNXTensorElementDataType GetOutputType(size_t index) const;
};

}  // namespace mamba_export_ops
