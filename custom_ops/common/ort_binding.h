// What every op's ONNX Runtime binding does the same way: read an optional int
// attribute, describe the inputs for validation, address an input's memory, lend
// the session's threads to a CPU kernel, and the parts of the op definition that do
// not depend on the op. Each op's ort_kernel.cc keeps only what its contract decides
// (attributes' values, dtypes per input, how tensors fill its params).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <onnxruntime_cxx_api.h>

#include "common/ort_dtype.h"
#include "common/parallel_for.h"
#include "mamba_export_ops/input_desc.h"
#include "mamba_export_ops/status.h"

namespace mamba_export_ops {

// Reads an int attribute into *value, `absent` (0 unless given) when the node does not
// set it. Any other failure is an error naming the op and the attribute; `values` (e.g.
// " (0 none, 1 silu)", or "") follows "must be an int" in it.
inline OrtStatus* ReadIntAttribute(const OrtApi& api, const OrtKernelInfo* info, const char* op_type,
                                   const char* name, const char* values, int64_t* value, int64_t absent = 0) {
  *value = absent;
  if (OrtStatus* status = api.KernelInfoGetAttribute_int64(info, name, value)) {
    const std::string message = api.GetErrorMessage(status);
    api.ReleaseStatus(status);
    if (message.find("No attribute") == std::string::npos) {
      return InvalidArgument(op_type, ": attribute ", name, " must be an int", values, ": ", message);
    }
    *value = absent;
  }
  return nullptr;
}

// Fills the shape and dtype name of every input the node has, without reading memory.
template <size_t N>
void DescribeInputs(const Ort::KernelContext& context, InputDesc (&inputs)[N]) {
  const size_t count = context.GetInputCount();
  for (size_t i = 0; i < N && i < count; ++i) {
    Ort::ConstValue value = context.GetInput(i);
    if (value == nullptr) continue;
    const auto info = value.GetTensorTypeAndShapeInfo();
    inputs[i].present = true;
    inputs[i].shape = info.GetShape();
    inputs[i].dtype = DtypeName(info.GetElementType());
  }
}

// The memory of input `index`, or nullptr for an absent optional input.
template <typename T>
const T* InputData(const Ort::KernelContext& context, int index, bool present) {
  return present ? static_cast<const T*>(context.GetInput(index).GetTensorRawData()) : nullptr;
}

inline void RunOnOrtThreads(void* state, void (*task)(void*, size_t), size_t count, void* task_state) {
  static_cast<const Ort::KernelContext*>(state)->ParallelFor(task, count, 0, task_state);
}

// The session's intra-op threads, lent to a CPU kernel for one call.
inline ParallelFor OrtThreads(const Ort::KernelContext& context) {
  ParallelFor threads;
  threads.run = RunOnOrtThreads;
  threads.runner_state = const_cast<Ort::KernelContext*>(&context);
  return threads;
}

// What ONNX Runtime asks of an op that its contract header fixes.
struct OpSignature {
  const char* name;
  int version;
  size_t num_inputs;
  size_t num_required_inputs;  // the first ones; the rest are optional
  size_t num_outputs;          // all required
};

// The op-independent part of an op registration: the signature, the execution
// provider, the I/O dtype, the provider's runner and where inputs live. Op supplies
// CreateKernelV2, GetInputType and GetOutputType.
template <typename Op, typename Kernel, typename Runner>
class OrtOpBase : public Ort::CustomOpBase<Op, Kernel, true> {
 public:
  OrtOpBase(const OpSignature& signature, const char* execution_provider, ONNXTensorElementDataType io_type,
            Runner runner)
      : signature_(signature), execution_provider_(execution_provider), io_type_(io_type), runner_(runner) {
    this->start_ver_ = signature.version;
  }

  const char* GetName() const { return signature_.name; }
  const char* GetExecutionProviderType() const { return execution_provider_; }

  size_t GetInputTypeCount() const { return signature_.num_inputs; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index < signature_.num_required_inputs ? INPUT_OUTPUT_REQUIRED : INPUT_OUTPUT_OPTIONAL;
  }
  // Every input stays where the provider keeps tensors (device memory for CUDA).
  OrtMemType GetInputMemoryType(size_t) const { return OrtMemTypeDefault; }

  size_t GetOutputTypeCount() const { return signature_.num_outputs; }
  OrtCustomOpInputOutputCharacteristic GetOutputCharacteristic(size_t) const { return INPUT_OUTPUT_REQUIRED; }

 protected:
  OpSignature signature_;
  const char* execution_provider_;
  ONNXTensorElementDataType io_type_;
  Runner runner_;
};

}  // namespace mamba_export_ops
