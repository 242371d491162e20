// The CUDA kernels of the library: one line per (op, dtype). Built only with
// MAMBA_EXPORT_WITH_CUDA=ON; same op name, domain and version as on the CPU.
#include "causal_conv/ort_kernel.h"
#include "last_argmax/ort_kernel.h"
#include "linear/ort_kernel.h"
#include "register.h"
#include "residual_norm/ort_kernel.h"
#include "selective_scan/ort_kernel.h"

namespace mamba_export_ops {

void AddCudaKernels(OrtCustomOpDomain* domain) {
  constexpr const char* kCuda = "CUDAExecutionProvider";
  static const SelectiveScanOp kOps[] = {
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, RunScanOnCuda},
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, RunScanOnCuda},
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, RunScanOnCuda},
  };
  static const CausalConvOp kConvOps[] = {
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, RunConvOnCuda},
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, RunConvOnCuda},
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, RunConvOnCuda},
  };
  static const ResidualNormOp kNormOps[] = {
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, RunNormOnCuda},
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, RunNormOnCuda},
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, RunNormOnCuda},
  };
  for (const auto& op : kOps) AddOp(domain, &op);
  for (const auto& op : kConvOps) AddOp(domain, &op);
  static const LinearOp kLinearOps[] = {
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, RunLinearOnCuda},
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, RunLinearOnCuda},
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, RunLinearOnCuda},
  };
  for (const auto& op : kNormOps) AddOp(domain, &op);
  for (const auto& op : kLinearOps) AddOp(domain, &op);
  static const LastArgMaxOp kArgMaxOps[] = {
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, RunArgMaxOnCuda},
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16, RunArgMaxOnCuda},
      {kCuda, ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16, RunArgMaxOnCuda},
  };
  for (const auto& op : kArgMaxOps) AddOp(domain, &op);
}

}  // namespace mamba_export_ops
