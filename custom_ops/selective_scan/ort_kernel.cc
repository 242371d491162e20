// Reads SelectiveScan's tensors from ONNX Runtime, validates them against the
// contract before touching their memory, allocates the outputs and runs the scan.
#include "selective_scan/ort_kernel.h"

#include <string>

#include "mamba_export_ops/contract.h"
#include "mamba_export_ops/status.h"
#include "selective_scan/cpu.h"
#include "selective_scan/validate.h"

namespace mamba_export_ops {
namespace {

bool IsIoInput(size_t index) {
  return index == kInputU || index == kInputDelta || index == kInputB || index == kInputC ||
         index == kInputZ;
}

OrtStatus* ReadOffsets(const OrtApi& api, const OrtKernelInfo* info, ScanOffsets* offsets) {
  const struct {
    const char* name;
    int64_t* value;
  } attributes[] = {{kAttrBOffset, &offsets->b},
                    {kAttrCOffset, &offsets->c},
                    {kAttrZOffset, &offsets->z},
                    {kAttrDeltaOffset, &offsets->delta}};
  for (const auto& attribute : attributes) {
    if (OrtStatus* status = ReadIntAttribute(api, info, kSelectiveScanOpType, attribute.name, "",
                                             attribute.value, kWholeInput)) {
      return status;
    }
  }
  return nullptr;
}

OrtStatus* ReadAttributes(const OrtApi& api, const OrtKernelInfo* info, bool* delta_softplus, int* layout) {
  int64_t softplus = 0, layout_value = 0;
  if (OrtStatus* status = ReadIntAttribute(api, info, kSelectiveScanOpType, kAttrDeltaSoftplus, "", &softplus)) {
    return status;
  }
  if (softplus != 0 && softplus != 1) {
    return InvalidArgument(kSelectiveScanOpType, ": attribute ", kAttrDeltaSoftplus, " is ", softplus,
                           ", expected 0 or 1");
  }
  if (OrtStatus* status = ReadIntAttribute(api, info, kSelectiveScanOpType, kAttrLayout, "", &layout_value)) {
    return status;
  }
  if (layout_value != kLayoutChannelsFirst && layout_value != kLayoutChannelsLast) {
    return InvalidArgument(kSelectiveScanOpType, ": attribute ", kAttrLayout, " is ", layout_value,
                           ", expected 0 (channels first) or 1 (channels last)");
  }
  *delta_softplus = softplus == 1;
  *layout = static_cast<int>(layout_value);
  return nullptr;
}

void BindTensors(const Ort::KernelContext& context, const ScanInputs& in, SelectiveScanParams& p) {
  p.u = InputData<void>(context, kInputU, true);
  // The projected form reads x_dt from delta_offset on (kWholeInput otherwise: delta as is).
  p.delta = WindowStart(InputData<void>(context, kInputDelta, true), p.offsets.delta, p.dtype);
  p.delta_weight = InputData<float>(context, kInputDeltaWeight, in[kInputDeltaWeight].present);
  p.A = InputData<float>(context, kInputA, true);
  p.B = WindowStart(InputData<void>(context, kInputB, true), p.offsets.b, p.dtype);
  p.C = WindowStart(InputData<void>(context, kInputC, true), p.offsets.c, p.dtype);
  p.D = InputData<float>(context, kInputD, in[kInputD].present);
  p.z = WindowStart(InputData<void>(context, kInputZ, in[kInputZ].present), p.offsets.z, p.dtype);
  p.delta_bias = InputData<float>(context, kInputDeltaBias, in[kInputDeltaBias].present);
  p.initial_state = InputData<float>(context, kInputInitialState, in[kInputInitialState].present);
  auto y = context.GetOutput(kOutputY, in[kInputU].shape);
  auto last_state = context.GetOutput(kOutputLastState, {p.batch, p.dim, p.state});
  p.y = y.GetTensorMutableRawData();
  p.last_state = static_cast<float*>(last_state.GetTensorMutableRawData());
}

}  // namespace

OrtStatus* RunScanOnCpu(const SelectiveScanParams& params, const Ort::KernelContext& context) {
  RunSelectiveScanCpu(params, OrtThreads(context));
  return nullptr;
}

OrtStatus* SelectiveScanKernel::Compute(OrtKernelContext* raw_context) const {
  const Ort::KernelContext context(raw_context);
  ScanInputs inputs;
  DescribeInputs(context, inputs);
  SelectiveScanParams params;
  const std::string error = ValidateSelectiveScanInputs(inputs, layout_, offsets_, &params);
  if (!error.empty()) return InvalidArgument(error);
  params.delta_softplus = delta_softplus_;
  BindTensors(context, inputs, params);
  return runner_(params, context);
}

OrtStatusPtr SelectiveScanKernel::ComputeV2(OrtKernelContext* context) const {
  return GuardStatus(kSelectiveScanOpType, [&] { return Compute(context); });
}

SelectiveScanOp::SelectiveScanOp(const char* execution_provider, ONNXTensorElementDataType io_type,
                                 ScanRunner runner)
    : OrtOpBase({kSelectiveScanOpType, kSelectiveScanVersion, kNumInputs, kNumRequiredInputs, kNumOutputs},
                execution_provider, io_type, runner) {}

OrtStatusPtr SelectiveScanOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info,
                                             void** kernel) const {
  return GuardStatus(kSelectiveScanOpType, [&]() -> OrtStatus* {
    bool delta_softplus = false;
    int layout = kLayoutChannelsFirst;
    ScanOffsets offsets;
    if (OrtStatus* status = ReadAttributes(api, info, &delta_softplus, &layout)) return status;
    if (OrtStatus* status = ReadOffsets(api, info, &offsets)) return status;
    *kernel = new SelectiveScanKernel(delta_softplus, layout, offsets, runner_);
    return nullptr;
  });
}

ONNXTensorElementDataType SelectiveScanOp::GetInputType(size_t index) const {
  return IsIoInput(index) ? io_type_ : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}

ONNXTensorElementDataType SelectiveScanOp::GetOutputType(size_t index) const {
  return index == kOutputY ? io_type_ : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}

}  // namespace mamba_export_ops
