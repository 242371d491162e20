// The ONNX Runtime binding of CausalConv1d: the op definition ORT registers and the
// kernel it runs. The kernel reads the tensors, checks them with validate.h, fills
// CausalConvParams and hands them to a provider's runner (CPU or CUDA); it is the
// only place, with register*.cc, that sees ONNX Runtime types.
#pragma once

#include <onnxruntime_cxx_api.h>

#include "causal_conv/params.h"
#include "common/ort_binding.h"

namespace mamba_export_ops {

// Computes a validated convolution whose outputs are allocated; returns nullptr or an error.
using ConvRunner = OrtStatus* (*)(const CausalConvParams& params, const Ort::KernelContext& context);

// On the session's intra-op threads.
OrtStatus* RunConvOnCpu(const CausalConvParams& params, const Ort::KernelContext& context);
// On ORT's CUDA compute stream; defined in ort_kernel_cuda.cc, built only with CUDA.
OrtStatus* RunConvOnCuda(const CausalConvParams& params, const Ort::KernelContext& context);

class CausalConvKernel {
 public:
  CausalConvKernel(bool silu, int64_t x_offset, ConvRunner runner)
      : silu_(silu), x_offset_(x_offset), runner_(runner) {}
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  OrtStatus* Compute(OrtKernelContext* context) const;

  bool silu_;
  int64_t x_offset_;  // checked with the shapes, so a bad value gets the contract's message
  ConvRunner runner_;
};

// One registration of CausalConv1d: an execution provider and the I/O dtype of x,
// conv_state and both outputs (weight and bias are always float32, the mask int64).
class CausalConvOp : public OrtOpBase<CausalConvOp, CausalConvKernel, ConvRunner> {
 public:
  CausalConvOp(const char* execution_provider, ONNXTensorElementDataType io_type, ConvRunner runner);

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  ONNXTensorElementDataType GetInputType(size_t index) const;
  ONNXTensorElementDataType GetOutputType(size_t index) const;
};

}  // namespace mamba_export_ops
