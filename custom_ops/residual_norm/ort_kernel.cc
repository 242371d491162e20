// Reads ResidualRMSNorm's tensors from ONNX Runtime, validates them against the
// contract before touching their memory, allocates the outputs and runs the kernel.
#include "residual_norm/ort_kernel.h"

#include <cmath>
#include <string>

#include "mamba_export_ops/residual_norm.h"
#include "mamba_export_ops/status.h"
#include "residual_norm/cpu.h"
#include "residual_norm/validate.h"

namespace mamba_export_ops {
namespace {

// Reads the attribute, defaulting to the contract's when the node does not set it.
OrtStatus* ReadEpsilon(const OrtApi& api, const OrtKernelInfo* info, float* epsilon) {
  *epsilon = kDefaultEpsilon;
  if (OrtStatus* status = api.KernelInfoGetAttribute_float(info, kAttrEpsilon, epsilon)) {
    const std::string message = api.GetErrorMessage(status);
    api.ReleaseStatus(status);
    if (message.find("No attribute") == std::string::npos) {
      return InvalidArgument(kResidualNormOpType, ": attribute ", kAttrEpsilon, " must be a float: ", message);
    }
    *epsilon = kDefaultEpsilon;
  }
  if (!(*epsilon >= 0.0f) || std::isinf(*epsilon)) {
    return InvalidArgument(kResidualNormOpType, ": attribute ", kAttrEpsilon, " is ", *epsilon,
                           ", expected a finite float >= 0");
  }
  return nullptr;
}

void BindTensors(const Ort::KernelContext& context, const NormInputs& in, ResidualNormParams& p) {
  p.x = InputData<void>(context, kNormInputX, true);
  p.weight = InputData<void>(context, kNormInputWeight, true);
  p.residual = InputData<float>(context, kNormInputResidual, in[kNormInputResidual].present);
  auto y = context.GetOutput(kNormOutputY, in[kNormInputX].shape);
  auto residual_out = context.GetOutput(kNormOutputResidualOut, in[kNormInputX].shape);
  p.y = y.GetTensorMutableRawData();
  p.residual_out = residual_out.GetTensorMutableData<float>();
}

}  // namespace

OrtStatus* RunNormOnCpu(const ResidualNormParams& params, const Ort::KernelContext& context) {
  RunResidualNormCpu(params, OrtThreads(context));
  return nullptr;
}

OrtStatus* ResidualNormKernel::Compute(OrtKernelContext* raw_context) const {
  const Ort::KernelContext context(raw_context);
  NormInputs inputs;
  DescribeInputs(context, inputs);
  ResidualNormParams params;
  const std::string error = ValidateResidualNormInputs(inputs, &params);
  if (!error.empty()) return InvalidArgument(error);
  params.epsilon = epsilon_;
  BindTensors(context, inputs, params);
  return runner_(params, context);
}

OrtStatusPtr ResidualNormKernel::ComputeV2(OrtKernelContext* context) const {
  return GuardStatus(kResidualNormOpType, [&] { return Compute(context); });
}

ResidualNormOp::ResidualNormOp(const char* execution_provider, ONNXTensorElementDataType io_type,
                               NormRunner runner)
    : OrtOpBase({kResidualNormOpType, kResidualNormVersion, kNormNumInputs, kNormNumRequiredInputs,
                 kNormNumOutputs},
                execution_provider, io_type, runner) {}

OrtStatusPtr ResidualNormOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
  return GuardStatus(kResidualNormOpType, [&]() -> OrtStatus* {
    float epsilon = kDefaultEpsilon;
    if (OrtStatus* status = ReadEpsilon(api, info, &epsilon)) return status;
    *kernel = new ResidualNormKernel(epsilon, runner_);
    return nullptr;
  });
}

ONNXTensorElementDataType ResidualNormOp::GetInputType(size_t index) const {
  switch (index) {
    case kNormInputResidual: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    default: return io_type_;
  }
}

ONNXTensorElementDataType ResidualNormOp::GetOutputType(size_t index) const {
  return index == kNormOutputResidualOut ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : io_type_;
}

}  // namespace mamba_export_ops
