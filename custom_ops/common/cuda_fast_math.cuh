// Special-function-unit forms of exp, 1/x and SiLU, shared by the CUDA kernels of the scan
// and the causal conv: one MUFU instruction each where the IEEE forms compile to a range
// reduction, a polynomial or a division with a slow-path call.
#pragma once

namespace mamba_export_ops {

// log2(e): exp(x) = 2^(x log2 e).
constexpr float kLog2e = 1.4426950408889634f;

// 2^x in one special-function instruction. Results below 2^-126 flush to zero,
// which only drops values far too small to change a float32 sum or state.
__device__ __forceinline__ float FastExp2(float x) {
  float result;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(result) : "f"(x));
  return result;
}

// 1 / x in one special-function instruction (about 1 ulp; subnormal results flush to zero).
__device__ __forceinline__ float FastReciprocal(float x) {
  float result;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(result) : "f"(x));
  return result;
}

// x sigmoid(x) = x / (1 + exp(-x)) in two special-function instructions. Emulated with
// exactly rounded 2^x and 1/x: within 3 ulp for x >= -5 and 18 below (where |SiLU(x)| < 0.04
// and the error is below 6e-8 absolute). x = -inf gives NaN, as the division and torch do.
__device__ __forceinline__ float FastSilu(float x) { return x * FastReciprocal(1.0f + FastExp2(-x * kLog2e)); }

}  // namespace mamba_export_ops
