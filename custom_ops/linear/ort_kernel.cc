// Reads Linear's tensors from ONNX Runtime, validates them against the contract before
// touching their memory, allocates the output and runs the kernel.
#include "linear/ort_kernel.h"

#include <string>
#include <vector>

#include "linear/cpu.h"
#include "linear/validate.h"
#include "mamba_export_ops/linear.h"
#include "mamba_export_ops/status.h"

namespace mamba_export_ops {
namespace {

// Whether the node's weight is an initializer. A runtime that cannot say counts as "not
// constant": the CUDA kernel then waits before reading it, which is always correct.
bool WeightIsConstant(const OrtApi& api, const OrtKernelInfo* info) {
  int is_constant = 0;
  const OrtValue* value = nullptr;
  if (OrtStatus* status = api.KernelInfoGetConstantInput_tensor(info, kLinearInputWeight, &is_constant, &value)) {
    api.ReleaseStatus(status);
    return false;
  }
  return is_constant != 0;
}

}  // namespace

OrtStatus* RunLinearOnCpu(const LinearParams& params, const Ort::KernelContext& context) {
  RunLinearCpu(params, OrtThreads(context));
  return nullptr;
}

OrtStatus* LinearKernel::Compute(OrtKernelContext* raw_context) const {
  const Ort::KernelContext context(raw_context);
  LinearInputs inputs;
  DescribeInputs(context, inputs);
  LinearParams params;
  const std::string error = ValidateLinearInputs(inputs, &params);
  if (!error.empty()) return InvalidArgument(error);
  params.weight_constant = weight_constant_;
  std::vector<int64_t> y_shape = inputs[kLinearInputX].shape;
  y_shape.back() = params.outer;
  auto y = context.GetOutput(kLinearOutputY, y_shape);
  params.x = InputData<void>(context, kLinearInputX, true);
  params.weight = InputData<void>(context, kLinearInputWeight, true);
  params.y = y.GetTensorMutableRawData();
  return runner_(params, context);
}

OrtStatusPtr LinearKernel::ComputeV2(OrtKernelContext* context) const {
  return GuardStatus(kLinearOpType, [&] { return Compute(context); });
}

LinearOp::LinearOp(const char* execution_provider, ONNXTensorElementDataType io_type, LinearRunner runner)
    : OrtOpBase({kLinearOpType, kLinearVersion, kLinearNumInputs, kLinearNumRequiredInputs, kLinearNumOutputs},
                execution_provider, io_type, runner) {}

OrtStatusPtr LinearOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
  return GuardStatus(kLinearOpType, [&]() -> OrtStatus* {
    *kernel = new LinearKernel(WeightIsConstant(api, info), runner_);
    return nullptr;
  });
}

}  // namespace mamba_export_ops
