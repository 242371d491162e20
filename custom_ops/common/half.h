// float16 and bfloat16 <-> float32 conversions, written with integer operations so
// they need no compiler extension and vectorise inside the CPU scan's loops.
// Float to half/bfloat16 rounds to nearest even; NaN stays NaN, overflow gives inf.
#pragma once

#include <cstdint>
#include <cstring>

namespace mamba_export_ops {

inline uint32_t FloatBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

inline float BitsToFloat(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

inline float BFloat16ToFloat(uint16_t value) { return BitsToFloat(static_cast<uint32_t>(value) << 16); }

inline uint16_t FloatToBFloat16(float value) {
  const uint32_t bits = FloatBits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

inline float HalfToFloat(uint16_t value) {
  const uint32_t sign = static_cast<uint32_t>(value & 0x8000u) << 16;
  const uint32_t exponent = (value >> 10) & 0x1fu;
  const uint32_t mantissa = value & 0x3ffu;
  if (exponent == 0x1fu) return BitsToFloat(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN
  if (exponent != 0) return BitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  // Zero and subnormals: mantissa * 2^-24, exact in float32.
  const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
  return BitsToFloat(sign | FloatBits(magnitude));
}

inline uint16_t FloatToHalf(float value) {
  const uint32_t bits = FloatBits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs_bits = bits & 0x7fffffffu;
  if (abs_bits > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (abs_bits >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (abs_bits < 0x38800000u) {
    // Below the smallest normal half (2^-14): adding 0.5 aligns the subnormal
    // half's mantissa with float's low bits and lets the FPU round to nearest even.
    const float shifted = BitsToFloat(abs_bits) + 0.5f;
    return static_cast<uint16_t>(sign | (FloatBits(shifted) - 0x3f000000u));
  }
  const uint32_t rounding = 0xfffu + ((abs_bits >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((abs_bits - 0x38000000u + rounding) >> 13));
}

// Element access by I/O dtype for templated kernels: Load widens to float32,
// Store rounds back.
struct Float32Io {
  using Storage = float;
  static inline float Load(Storage value) { return value; }
  static inline Storage Store(float value) { return value; }
};

struct Float16Io {
  using Storage = uint16_t;
  static inline float Load(Storage value) { return HalfToFloat(value); }
  static inline Storage Store(float value) { return FloatToHalf(value); }
};

struct BFloat16Io {
  using Storage = uint16_t;
  static inline float Load(Storage value) { return BFloat16ToFloat(value); }
  static inline Storage Store(float value) { return FloatToBFloat16(value); }
};

}  // namespace mamba_export_ops
