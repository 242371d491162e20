// Rows of I/O values <-> float32 for the CPU convolution: Load widens a row of
// contiguous channels, Store rounds one back (to nearest even), LoadOne/StoreOne do
// single values. float16 rows use F16C (8 values per instruction, present on every
// x86-64-v3 CPU) when the CPU has it, and common/half.h's integer conversions
// otherwise; the two give the same bits for every non-NaN value.
#pragma once

#include <cstdint>

#include "common/fast_math.h"
#include "common/half.h"

namespace mamba_export_ops {

template <typename Io>
struct ScalarRows {
  using Storage = typename Io::Storage;
  MAMBA_INLINE static float LoadOne(Storage value) { return Io::Load(value); }
  MAMBA_INLINE static Storage StoreOne(float value) { return Io::Store(value); }
  MAMBA_INLINE static void Load(const Storage* in, float* out, int64_t n) {
#pragma omp simd
    for (int64_t c = 0; c < n; ++c) out[c] = Io::Load(in[c]);
  }
  MAMBA_INLINE static void Store(const float* in, Storage* out, int64_t n) {
#pragma omp simd
    for (int64_t c = 0; c < n; ++c) out[c] = Io::Store(in[c]);
  }
};

using Float32Rows = ScalarRows<Float32Io>;
using BFloat16Rows = ScalarRows<BFloat16Io>;

// float16 rows through a converter picked once per process.
struct Float16Rows {
  using Storage = uint16_t;
  using LoadFn = void (*)(const uint16_t* in, float* out, int64_t n);
  using StoreFn = void (*)(const float* in, uint16_t* out, int64_t n);
  struct Converters {
    LoadFn load;
    StoreFn store;
  };

  static const Converters& Pick();
  MAMBA_INLINE static float LoadOne(Storage value) { return HalfToFloat(value); }
  MAMBA_INLINE static Storage StoreOne(float value) { return FloatToHalf(value); }
  static void Load(const uint16_t* in, float* out, int64_t n) { Pick().load(in, out, n); }
  static void Store(const float* in, uint16_t* out, int64_t n) { Pick().store(in, out, n); }
};

}  // namespace mamba_export_ops
