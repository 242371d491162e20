// Reads LastArgMax's tensor from ONNX Runtime, validates it against the contract
// before touching its memory, allocates the output and runs the kernel.
#include "last_argmax/ort_kernel.h"

#include <string>
#include <vector>

#include "last_argmax/cpu.h"
#include "last_argmax/validate.h"
#include "mamba_export_ops/last_argmax.h"
#include "mamba_export_ops/status.h"

namespace mamba_export_ops {
namespace {

void BindTensors(const Ort::KernelContext& context, LastArgMaxParams& p) {
  p.logits = InputData<void>(context, kArgMaxInputLogits, true);
  const std::vector<int64_t> shape = {p.batch, 1};
  auto tokens = context.GetOutput(kArgMaxOutputTokens, shape);
  p.tokens = tokens.GetTensorMutableData<int64_t>();
}

}  // namespace

OrtStatus* RunArgMaxOnCpu(const LastArgMaxParams& params, const Ort::KernelContext& context) {
  RunLastArgMaxCpu(params, OrtThreads(context));
  return nullptr;
}

OrtStatus* LastArgMaxKernel::Compute(OrtKernelContext* raw_context) const {
  const Ort::KernelContext context(raw_context);
  ArgMaxInputs inputs;
  DescribeInputs(context, inputs);
  LastArgMaxParams params;
  const std::string error = ValidateLastArgMaxInputs(inputs, &params);
  if (!error.empty()) return InvalidArgument(error);
  BindTensors(context, params);
  return runner_(params, context);
}

OrtStatusPtr LastArgMaxKernel::ComputeV2(OrtKernelContext* context) const {
  return GuardStatus(kLastArgMaxOpType, [&] { return Compute(context); });
}

LastArgMaxOp::LastArgMaxOp(const char* execution_provider, ONNXTensorElementDataType io_type, ArgMaxRunner runner)
    : OrtOpBase({kLastArgMaxOpType, kLastArgMaxVersion, kArgMaxNumInputs, kArgMaxNumRequiredInputs,
                 kArgMaxNumOutputs},
                execution_provider, io_type, runner) {}

OrtStatusPtr LastArgMaxOp::CreateKernelV2(const OrtApi&, const OrtKernelInfo*, void** kernel) const {
  return GuardStatus(kLastArgMaxOpType, [&]() -> OrtStatus* {
    *kernel = new LastArgMaxKernel(runner_);
    return nullptr;
  });
}

ONNXTensorElementDataType LastArgMaxOp::GetInputType(size_t) const { return io_type_; }

ONNXTensorElementDataType LastArgMaxOp::GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64; }

}  // namespace mamba_export_ops
