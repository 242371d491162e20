// Reads CausalConv1d's tensors from ONNX Runtime, validates them against the
// contract before touching their memory, allocates the outputs and runs the kernel.
#include "causal_conv/ort_kernel.h"

#include <string>

#include "causal_conv/cpu.h"
#include "causal_conv/validate.h"
#include "mamba_export_ops/causal_conv.h"
#include "mamba_export_ops/status.h"

namespace mamba_export_ops {
namespace {

// Reads the attribute, defaulting to 0 (no activation) when the node does not set it.
OrtStatus* ReadActivation(const OrtApi& api, const OrtKernelInfo* info, bool* silu) {
  int64_t value = kActivationNone;
  if (OrtStatus* status =
          ReadIntAttribute(api, info, kCausalConvOpType, kAttrActivation, " (0 none, 1 silu)", &value)) {
    return status;
  }
  if (value != kActivationNone && value != kActivationSilu) {
    return InvalidArgument(kCausalConvOpType, ": attribute ", kAttrActivation, " is ", value,
                           ", expected one of 0 (none), 1 (silu)");
  }
  *silu = value == kActivationSilu;
  return nullptr;
}

OrtStatus* ReadXOffset(const OrtApi& api, const OrtKernelInfo* info, int64_t* x_offset) {
  return ReadIntAttribute(api, info, kCausalConvOpType, kAttrXOffset, "", x_offset, kWholeInput);
}

void BindTensors(const Ort::KernelContext& context, const ConvInputs& in, CausalConvParams& p) {
  const void* x = InputData<void>(context, kConvInputX, true);
  // Read at an offset, x starts at channel x_offset of its first step.
  p.x = p.x_offset == kWholeInput ? x : static_cast<const char*>(x) + p.x_offset * ConvDTypeBytes(p.dtype);
  p.weight = InputData<float>(context, kConvInputWeight, true);
  p.bias = InputData<float>(context, kConvInputBias, in[kConvInputBias].present);
  p.conv_state = InputData<void>(context, kConvInputConvState, in[kConvInputConvState].present);
  p.mask = InputData<int64_t>(context, kConvInputMask, in[kConvInputMask].present);
  auto y = context.GetOutput(kConvOutputY, {p.batch, p.length, p.channels});
  auto state = context.GetOutput(kConvOutputNewConvState, {p.batch, p.channels, p.width - 1});
  p.y = y.GetTensorMutableRawData();
  p.new_conv_state = state.GetTensorMutableRawData();
}

}  // namespace

OrtStatus* RunConvOnCpu(const CausalConvParams& params, const Ort::KernelContext& context) {
  RunCausalConvCpu(params, OrtThreads(context));
  return nullptr;
}

OrtStatus* CausalConvKernel::Compute(OrtKernelContext* raw_context) const {
  const Ort::KernelContext context(raw_context);
  ConvInputs inputs;
  DescribeInputs(context, inputs);
  CausalConvParams params;
  const std::string error = ValidateCausalConvInputs(inputs, x_offset_, &params);
  if (!error.empty()) return InvalidArgument(error);
  params.silu = silu_;
  BindTensors(context, inputs, params);
  return runner_(params, context);
}

OrtStatusPtr CausalConvKernel::ComputeV2(OrtKernelContext* context) const {
  return GuardStatus(kCausalConvOpType, [&] { return Compute(context); });
}

CausalConvOp::CausalConvOp(const char* execution_provider, ONNXTensorElementDataType io_type, ConvRunner runner)
    : OrtOpBase({kCausalConvOpType, kCausalConvVersion, kConvNumInputs, kConvNumRequiredInputs, kConvNumOutputs},
                execution_provider, io_type, runner) {}

OrtStatusPtr CausalConvOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
  return GuardStatus(kCausalConvOpType, [&]() -> OrtStatus* {
    bool silu = false;
    int64_t x_offset = kWholeInput;
    if (OrtStatus* status = ReadActivation(api, info, &silu)) return status;
    if (OrtStatus* status = ReadXOffset(api, info, &x_offset)) return status;
    *kernel = new CausalConvKernel(silu, x_offset, runner_);
    return nullptr;
  });
}

ONNXTensorElementDataType CausalConvOp::GetInputType(size_t index) const {
  switch (index) {
    case kConvInputWeight:
    case kConvInputBias: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    case kConvInputMask: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
    default: return io_type_;
  }
}

ONNXTensorElementDataType CausalConvOp::GetOutputType(size_t) const { return io_type_; }

}  // namespace mamba_export_ops
