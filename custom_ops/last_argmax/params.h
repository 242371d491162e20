// Sizes and pointers of one LastArgMax call. Kernels (cpu.cc, cuda.cu) compute on this
// struct alone and know nothing about ONNX Runtime; ort_kernel.cc fills it after
// checking the input against the contract.
#pragma once

#include <cstdint>

namespace mamba_export_ops {

enum class ArgMaxDType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

struct LastArgMaxParams {
  int64_t batch = 0;      // B
  int64_t positions = 0;  // L >= 1
  int64_t vocab = 0;      // V >= 1
  ArgMaxDType dtype = ArgMaxDType::kFloat32;  // of logits

  // Dense and row-major: the row read for sequence b starts at
  // logits + (b * positions + positions - 1) * vocab.
  const void* logits = nullptr;  // (B, L, V)  T
  int64_t* tokens = nullptr;     // (B, 1)     int64
};

// The first value of a row read for sequence b, in elements from the start of logits.
inline int64_t LastRowOffset(const LastArgMaxParams& p, int64_t b) {
  return (b * p.positions + p.positions - 1) * p.vocab;
}

}  // namespace mamba_export_ops
