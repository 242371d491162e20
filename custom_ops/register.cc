// The library's entry point: ONNX Runtime calls RegisterCustomOps after loading
// libmamba_export_ops.so with SessionOptions.register_custom_ops_library().
// It creates the "mamba_export" domain and adds one kernel per (op, provider, dtype).
#include <mutex>

#include "mamba_export_ops/contract.h"
#include "mamba_export_ops/status.h"
#include "register.h"
#include "causal_conv/ort_kernel.h"
#include "last_argmax/ort_kernel.h"
#include "linear/ort_kernel.h"
#include "residual_norm/ort_kernel.h"
#include "selective_scan/ort_kernel.h"

namespace mamba_export_ops {
namespace {

constexpr const char* kCpu = "CPUExecutionProvider";
constexpr int kRequiredApiVersion = ORT_API_VERSION;

void AddCpuKernels(OrtCustomOpDomain* domain) {
  static const SelectiveScanOp kOps[] = {
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, RunScanOnCpu},
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, RunScanOnCpu},
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, RunScanOnCpu},
  };
  static const CausalConvOp kConvOps[] = {
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, RunConvOnCpu},
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, RunConvOnCpu},
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, RunConvOnCpu},
  };
  static const ResidualNormOp kNormOps[] = {
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, RunNormOnCpu},
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, RunNormOnCpu},
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, RunNormOnCpu},
  };
  for (const auto& op : kOps) AddOp(domain, &op);
  for (const auto& op : kConvOps) AddOp(domain, &op);
  static const LinearOp kLinearOps[] = {
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, RunLinearOnCpu},
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, RunLinearOnCpu},
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, RunLinearOnCpu},
  };
  for (const auto& op : kNormOps) AddOp(domain, &op);
  for (const auto& op : kLinearOps) AddOp(domain, &op);
  static const LastArgMaxOp kArgMaxOps[] = {
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, RunArgMaxOnCpu},
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, RunArgMaxOnCpu},
      {kCpu, ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, RunArgMaxOnCpu},
  };
  for (const auto& op : kArgMaxOps) AddOp(domain, &op);
}

// The domain is built once per process and shared by every session options object
// it is added to. It is never released: sessions may use it until the process ends,
// when the runtime that would release it may already be unloaded.
OrtCustomOpDomain* SharedDomain() {
  static OrtCustomOpDomain* domain = [] {
    OrtCustomOpDomain* created = nullptr;
    Ort::ThrowOnError(Ort::GetApi().CreateCustomOpDomain(kDomain, &created));
    AddCpuKernels(created);
#if defined(MAMBA_EXPORT_WITH_CUDA)
    AddCudaKernels(created);
#endif
    return created;
  }();
  return domain;
}

OrtStatus* VersionMismatch(const OrtApiBase* api_base) {
  // API version 1 exists in every runtime, so it can still report the problem.
  const OrtApi* oldest = api_base->GetApi(1);
  const std::string message =
      StrCat("libmamba_export_ops needs ONNX Runtime API version ", kRequiredApiVersion,
             " (ONNX Runtime 1.", kRequiredApiVersion, " or newer); this runtime is ",
             api_base->GetVersionString());
  return oldest ? oldest->CreateStatus(ORT_FAIL, message.c_str()) : nullptr;
}

}  // namespace

void AddOp(OrtCustomOpDomain* domain, const OrtCustomOp* op) {
  Ort::ThrowOnError(Ort::GetApi().CustomOpDomain_Add(domain, op));
}

}  // namespace mamba_export_ops

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  using namespace mamba_export_ops;
  const OrtApi* api = api_base->GetApi(kRequiredApiVersion);
  if (api == nullptr) return VersionMismatch(api_base);
  static std::once_flag init_once;
  std::call_once(init_once, [api] { Ort::InitApi(api); });
  return GuardStatus("RegisterCustomOps", [&] {
    return Ort::GetApi().AddCustomOpDomain(options, SharedDomain());
  });
}
