// exp, log1p, softplus and silu for the CPU scan, written as branch-free scalar code
// so that loops calling them vectorise (no libm calls, which would stay scalar).
// Accuracy: a few ulp over the whole float range, far inside the scan's 1e-5 budget.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/half.h"

#if defined(__GNUC__)
#define MAMBA_INLINE inline __attribute__((always_inline))
#else
#define MAMBA_INLINE inline
#endif

namespace mamba_export_ops {

// exp(x) for every float x. x = n ln2 + r with |r| <= ln2 / 2; exp(r) by its Taylor
// series to r^7 (truncation below 1e-8 relative); 2^n applied as two normal powers of
// two so n may reach -150..128. The clamp bounds are chosen so the last multiply
// itself rounds to 0 below exp(-104) and overflows to inf above exp(89): no selects,
// and NaN passes through the clamp unchanged.
MAMBA_INLINE float FastExp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // few mantissa bits: n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  constexpr float kMaxArg = 89.0f;            // n = 128, p > 1: p * 2^128 overflows to inf
  constexpr float kMinArg = -104.0f;          // n = -150, p < 1: p * 2^-150 rounds to 0
  const float xc = std::min(std::max(x, kMinArg), kMaxArg);
  const float n = (xc * kLog2e + kRoundMagic) - kRoundMagic;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t half = ni >> 1;
  const float scale_a = BitsToFloat(static_cast<uint32_t>(half + 127) << 23);
  const float scale_b = BitsToFloat(static_cast<uint32_t>(ni - half + 127) << 23);
  return p * scale_a * scale_b;
}

// log1p(e) for e in [0, 1]. log(1 + e) by the atanh series of the mantissa, then
// scaled by e / ((1 + e) - 1) to restore the bits of e that 1 + e rounded away.
MAMBA_INLINE float Log1pUnit(float e) {
  constexpr float kLn2 = 0.693147180559945309f;
  constexpr float kSqrt2 = 1.41421356237309505f;
  const float w = 1.0f + e;
  const bool above = w > kSqrt2;
  const float m = above ? w * 0.5f : w;
  const float s = (m - 1.0f) / (m + 1.0f);  // |s| <= 0.172
  const float s2 = s * s;
  float series = 1.0f / 9.0f;
  series = series * s2 + 1.0f / 7.0f;
  series = series * s2 + 1.0f / 5.0f;
  series = series * s2 + 1.0f / 3.0f;
  series = series * s2 + 1.0f;
  const float log_w = (above ? kLn2 : 0.0f) + 2.0f * s * series;
  return w == 1.0f ? e : log_w * (e / (w - 1.0f));
}

// torch's softplus (beta 1): x above the threshold, else log(1 + e^x), computed as
// max(x, 0) + log1p(e^-|x|) so it neither overflows nor cancels.
MAMBA_INLINE float FastSoftplus(float x, float threshold) {
  const float smooth = std::max(x, 0.0f) + Log1pUnit(FastExp(-std::fabs(x)));
  return x > threshold ? x : smooth;
}

MAMBA_INLINE float FastSilu(float x) { return x / (1.0f + FastExp(-x)); }

}  // namespace mamba_export_ops
