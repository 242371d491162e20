// Sizes and pointers of one Linear call. Kernels (cpu.cc, cuda.cu, cublas.cc) compute on this
// struct alone and know nothing about ONNX Runtime; ort_kernel.cc fills it after checking
// every input against the contract.
#pragma once

#include <cstdint>

namespace mamba_export_ops {

enum class LinearDType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

struct LinearParams {
  int64_t rows = 0;   // the product of every dimension of x but the last
  int64_t inner = 0;  // K
  int64_t outer = 0;  // N
  LinearDType dtype = LinearDType::kFloat32;  // of x, weight and y
  // The weight is an initializer: nothing writes it, so a CUDA kernel may read it before the
  // kernel ahead of it has finished.
  bool weight_constant = false;

  // Dense, row-major: row r of x is x + r * inner, row n of the weight is weight + n * inner.
  const void* x = nullptr;       // (rows, K)  T
  const void* weight = nullptr;  // (N, K)     T
  void* y = nullptr;             // (rows, N)  T
};

}  // namespace mamba_export_ops
