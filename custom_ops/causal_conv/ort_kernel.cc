// Reads CausalConv1d's tensors from ONNX Runtime, validates them against the
// contract before touching their memory, allocates the outputs and runs the kernel.
#include "causal_conv/ort_kernel.h"

#include <string>

#include "causal_conv/cpu.h"
#include "causal_conv/validate.h"
#include "common/ort_dtype.h"
#include "mamba_export_ops/causal_conv.h"
#include "mamba_export_ops/status.h"

namespace mamba_export_ops {
namespace {

// Reads the attribute, defaulting to 0 (no activation) when the node does not set it.
OrtStatus* ReadActivation(const OrtApi& api, const OrtKernelInfo* info, bool* silu) {
  int64_t value = kActivationNone;
  if (OrtStatus* status = api.KernelInfoGetAttribute_int64(info, kAttrActivation, &value)) {
    const std::string message = api.GetErrorMessage(status);
    api.ReleaseStatus(status);
    if (message.find("No attribute") == std::string::npos) {
      return InvalidArgument(kCausalConvOpType, ": attribute ", kAttrActivation,
                             " must be an int (0 none, 1 silu): ", message);
    }
    value = kActivationNone;
  }
  if (value != kActivationNone && value != kActivationSilu) {
    return InvalidArgument(kCausalConvOpType, ": attribute ", kAttrActivation, " is ", value,
                           ", expected one of 0 (none), 1 (silu)");
  }
  *silu = value == kActivationSilu;
  return nullptr;
}

void DescribeInputs(const Ort::KernelContext& context, ConvInputs& inputs) {
  const size_t count = context.GetInputCount();
  for (size_t i = 0; i < kConvNumInputs && i < count; ++i) {
    Ort::ConstValue value = context.GetInput(i);
    if (value == nullptr) continue;
    const auto info = value.GetTensorTypeAndShapeInfo();
    inputs[i].present = true;
    inputs[i].shape = info.GetShape();
    inputs[i].dtype = DtypeName(info.GetElementType());
  }
}

template <typename T>
const T* InputData(const Ort::KernelContext& context, int index, bool present) {
  return present ? static_cast<const T*>(context.GetInput(index).GetTensorRawData()) : nullptr;
}

void BindTensors(const Ort::KernelContext& context, const ConvInputs& in, CausalConvParams& p) {
  p.x = InputData<void>(context, kConvInputX, true);
  p.weight = InputData<float>(context, kConvInputWeight, true);
  p.bias = InputData<float>(context, kConvInputBias, in[kConvInputBias].present);
  p.conv_state = InputData<void>(context, kConvInputConvState, in[kConvInputConvState].present);
  p.mask = InputData<int64_t>(context, kConvInputMask, in[kConvInputMask].present);
  auto y = context.GetOutput(kConvOutputY, in[kConvInputX].shape);
  auto state = context.GetOutput(kConvOutputNewConvState, {p.batch, p.channels, p.width - 1});
  p.y = y.GetTensorMutableRawData();
  p.new_conv_state = state.GetTensorMutableRawData();
}

void RunOnOrtThreads(void* state, void (*task)(void*, size_t), size_t count, void* task_state) {
  static_cast<const Ort::KernelContext*>(state)->ParallelFor(task, count, 0, task_state);
}

}  // namespace

OrtStatus* RunConvOnCpu(const CausalConvParams& params, const Ort::KernelContext& context) {
  ParallelFor threads;
  threads.run = RunOnOrtThreads;
  threads.runner_state = const_cast<Ort::KernelContext*>(&context);
  RunCausalConvCpu(params, threads);
  return nullptr;
}

OrtStatus* CausalConvKernel::Compute(OrtKernelContext* raw_context) const {
  const Ort::KernelContext context(raw_context);
  ConvInputs inputs;
  DescribeInputs(context, inputs);
  CausalConvParams params;
  const std::string error = ValidateCausalConvInputs(inputs, &params);
  if (!error.empty()) return InvalidArgument(error);
  params.silu = silu_;
  BindTensors(context, inputs, params);
  return runner_(params, context);
}

OrtStatusPtr CausalConvKernel::ComputeV2(OrtKernelContext* context) const {
  return GuardStatus(kCausalConvOpType, [&] { return Compute(context); });
}

CausalConvOp::CausalConvOp(const char* execution_provider, ONNXTensorElementDataType io_type, ConvRunner runner)
    : execution_provider_(execution_provider), io_type_(io_type), runner_(runner) {
  start_ver_ = kCausalConvVersion;
}

OrtStatusPtr CausalConvOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
  return GuardStatus(kCausalConvOpType, [&]() -> OrtStatus* {
    bool silu = false;
    if (OrtStatus* status = ReadActivation(api, info, &silu)) return status;
    *kernel = new CausalConvKernel(silu, runner_);
    return nullptr;
  });
}

const char* CausalConvOp::GetName() const { return kCausalConvOpType; }

size_t CausalConvOp::GetInputTypeCount() const { return kConvNumInputs; }

ONNXTensorElementDataType CausalConvOp::GetInputType(size_t index) const {
  switch (index) {
    case kConvInputWeight:
    case kConvInputBias: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    case kConvInputMask: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
    default: return io_type_;
  }
}

OrtCustomOpInputOutputCharacteristic CausalConvOp::GetInputCharacteristic(size_t index) const {
  return index < static_cast<size_t>(kConvNumRequiredInputs) ? INPUT_OUTPUT_REQUIRED : INPUT_OUTPUT_OPTIONAL;
}

size_t CausalConvOp::GetOutputTypeCount() const { return kConvNumOutputs; }

ONNXTensorElementDataType CausalConvOp::GetOutputType(size_t) const { return io_type_; }

OrtCustomOpInputOutputCharacteristic CausalConvOp::GetOutputCharacteristic(size_t) const {
  return INPUT_OUTPUT_REQUIRED;
}

}  // namespace mamba_export_ops
