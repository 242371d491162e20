// The float16 row converters of cpu_rows.h: F16C where the CPU has it, else integer code.
#include "causal_conv/cpu_rows.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MAMBA_HAVE_F16C_PATH 1
#endif

namespace mamba_export_ops {
namespace {

void LoadHalfPortable(const uint16_t* in, float* out, int64_t n) { ScalarRows<Float16Io>::Load(in, out, n); }
void StoreHalfPortable(const float* in, uint16_t* out, int64_t n) { ScalarRows<Float16Io>::Store(in, out, n); }

#if defined(MAMBA_HAVE_F16C_PATH)
__attribute__((target("avx,f16c"))) void LoadHalfF16c(const uint16_t* in, float* out, int64_t n) {
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    _mm256_storeu_ps(out + c, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + c))));
  }
  for (; c < n; ++c) out[c] = HalfToFloat(in[c]);
}

__attribute__((target("avx,f16c"))) void StoreHalfF16c(const float* in, uint16_t* out, int64_t n) {
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const __m128i half = _mm256_cvtps_ph(_mm256_loadu_ps(in + c), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c), half);
  }
  for (; c < n; ++c) out[c] = FloatToHalf(in[c]);
}
#endif

}  // namespace

const Float16Rows::Converters& Float16Rows::Pick() {
  static const Converters converters = [] {
#if defined(MAMBA_HAVE_F16C_PATH)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c")) {
      return Converters{LoadHalfF16c, StoreHalfF16c};
    }
#endif
    return Converters{LoadHalfPortable, StoreHalfPortable};
  }();
  return converters;
}

}  // namespace mamba_export_ops
