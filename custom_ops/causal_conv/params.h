// Sizes and pointers of one CausalConv1d call. Kernels (cpu.cc, cuda.cu) compute on
// this struct alone and know nothing about ONNX Runtime; ort_kernel.cc fills it
// after checking every input against the contract.
#pragma once

#include <cstdint>

namespace mamba_export_ops {

enum class ConvDType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

inline int64_t ConvDTypeBytes(ConvDType dtype) { return dtype == ConvDType::kFloat32 ? 4 : 2; }

struct CausalConvParams {
  int64_t batch = 0;     // B
  int64_t length = 0;    // L
  int64_t channels = 0;  // C
  int64_t width = 0;     // K >= 1; the state has K - 1 columns
  bool silu = false;     // activation 1
  ConvDType dtype = ConvDType::kFloat32;  // of x, conv_state, y and new_conv_state
  // The x_offset attribute (-1: x read whole), and the elements between two steps of x:
  // C for a whole x, W when x is read at an offset of a packed (B, L, W) tensor.
  int64_t x_offset = -1;
  int64_t x_step = 0;

  // All tensors are dense and row-major in the shapes of the contract, except x read at
  // an offset: then x points at element (0, 0, x_offset) of its (B, L, W) tensor.
  const void* x = nullptr;           // (B, L, C)    T, steps x_step apart
  const float* weight = nullptr;     // (C, K)       float32
  const float* bias = nullptr;       // (C,)         float32, optional (nullptr)
  const void* conv_state = nullptr;  // (B, C, K-1)  T, optional (zeros)
  const int64_t* mask = nullptr;     // (B, L)       int64, optional (every position kept)
  void* y = nullptr;                 // (B, L, C)    T
  void* new_conv_state = nullptr;    // (B, C, K-1)  T
};

}  // namespace mamba_export_ops
