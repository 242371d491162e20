// The ONNX Runtime binding of SelectiveScan: the op definition ORT registers and the
// kernel it runs. The kernel reads the tensors, checks them with validate.h, fills
// SelectiveScanParams and hands them to a provider's runner (CPU or CUDA); it is the
// only place, with register*.cc, that sees ONNX Runtime types.
#pragma once

#include <onnxruntime_cxx_api.h>

#include "common/ort_binding.h"
#include "selective_scan/params.h"

namespace mamba_export_ops {

// Computes a validated scan whose outputs are allocated; returns nullptr or an error.
using ScanRunner = OrtStatus* (*)(const SelectiveScanParams& params, const Ort::KernelContext& context);

// On the session's intra-op threads.
OrtStatus* RunScanOnCpu(const SelectiveScanParams& params, const Ort::KernelContext& context);
// On ORT's CUDA compute stream; defined in ort_kernel_cuda.cc, built only with CUDA.
OrtStatus* RunScanOnCuda(const SelectiveScanParams& params, const Ort::KernelContext& context);

class SelectiveScanKernel {
 public:
  SelectiveScanKernel(bool delta_softplus, int layout, const ScanOffsets& offsets, ScanRunner runner)
      : delta_softplus_(delta_softplus), layout_(layout), offsets_(offsets), runner_(runner) {}
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  OrtStatus* Compute(OrtKernelContext* context) const;

  bool delta_softplus_;
  int layout_;
  ScanOffsets offsets_;  // checked with the shapes, so a bad value gets the contract's message
  ScanRunner runner_;
};

// One registration of SelectiveScan: an execution provider and the I/O dtype of
// u, delta, B, C, z and y (A, D, delta_bias and the states are always float32).
class SelectiveScanOp : public OrtOpBase<SelectiveScanOp, SelectiveScanKernel, ScanRunner> {
 public:
  SelectiveScanOp(const char* execution_provider, ONNXTensorElementDataType io_type, ScanRunner runner);

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  ONNXTensorElementDataType GetInputType(size_t index) const;
  ONNXTensorElementDataType GetOutputType(size_t index) const;
};

}  // namespace mamba_export_ops
