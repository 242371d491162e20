// Sizes and pointers of one ResidualRMSNorm call. Kernels (cpu.cc, cuda.cu) compute on
// this struct alone and know nothing about ONNX Runtime; ort_kernel.cc fills it
// after checking every input against the contract.
#pragma once

#include <cstdint>

namespace mamba_export_ops {

enum class NormDType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

struct ResidualNormParams {
  int64_t rows = 0;    // the product of every dimension of x but the last
  int64_t hidden = 0;  // H
  float epsilon = 1e-6f;
  NormDType dtype = NormDType::kFloat32;  // of x, weight and y

  // All tensors are dense and row-major: row r of x is x + r * hidden.
  const void* x = nullptr;         // (rows, H)  T
  const void* weight = nullptr;    // (H,)       T
  const float* residual = nullptr;  // (rows, H)  float32, optional (zeros)
  void* y = nullptr;               // (rows, H)  T
  float* residual_out = nullptr;   // (rows, H)  float32
};

}  // namespace mamba_export_ops
