// Sizes, strides and pointers of one SelectiveScan call. Kernels (cpu.cc, cuda.cu)
// compute on this struct alone and know nothing about ONNX Runtime; ort_kernel.cc
// fills it after checking every input against the contract.
#pragma once

#include <cstdint>

namespace mamba_export_ops {

enum class ScanDType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

struct SelectiveScanParams {
  int64_t batch = 0;     // B
  int64_t dim = 0;       // D, channels
  int64_t length = 0;    // L
  int64_t state = 0;     // N
  int64_t groups_b = 0;  // 0 when B is (B, N, L), else G of (B, G, N, L)
  int64_t groups_c = 0;
  bool delta_softplus = false;
  ScanDType dtype = ScanDType::kFloat32;  // of u, delta, B, C, z and y

  // All tensors are dense and row-major in the shapes of the contract.
  const void* u = nullptr;            // (B, D, L)  T
  const void* delta = nullptr;        // (B, D, L)  T
  const float* A = nullptr;           // (D, N)     float32
  const void* B = nullptr;            // (B, N, L) or (B, G, N, L)  T
  const void* C = nullptr;            // (B, N, L) or (B, G, N, L)  T
  const float* D = nullptr;           // (D,) float32, optional (nullptr)
  const void* z = nullptr;            // (B, D, L) T, optional
  const float* delta_bias = nullptr;  // (D,) float32, optional
  const float* initial_state = nullptr;  // (B, D, N) float32, optional
  void* y = nullptr;                  // (B, D, L)  T
  float* last_state = nullptr;        // (B, D, N)  float32
};

}  // namespace mamba_export_ops
