// AVX-512F path: 14 x 32 micro-tile (28 zmm accumulators + 2 B registers + 1 broadcast).
// Same driver and micro-kernel template as the AVX2 / scalar paths (those are tested here).
// GCC 12 warns (falsely) about _mm256_undefined_pd inside its own AVX-512 cast intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "erf_table.h"
#include "isa_kernels.h"

namespace edu {
namespace cpu {
namespace {

struct Avx512Vec {
  using reg = __m512;
  static constexpr int W = 16;
  static inline reg zero() { return _mm512_setzero_ps(); }
  static inline reg load(const float* p) { return _mm512_load_ps(p); }
  static inline reg loadu(const float* p) { return _mm512_loadu_ps(p); }
  static inline void storeu(float* p, reg r) { _mm512_storeu_ps(p, r); }
  static inline reg bcast(const float* p) { return _mm512_set1_ps(*p); }
  static inline reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static inline reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static inline float hsum(reg r) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(r), _mm512_extractf32x8_ps(r, 1));  // AVX512DQ
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

// erf(z), the AVX2 erf8 on 16 lanes (the 8-entry tables are duplicated into both 256-bit halves).
inline __m512 erf16(__m512 z) {
  auto table = [](const float* t8) { return _mm512_broadcast_f32x8(_mm256_load_ps(t8)); };  // AVX512DQ
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  const __m512i signBit = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  const __m512 az = _mm512_castsi512_ps(_mm512_andnot_si512(signBit, _mm512_castps_si512(z)));
  const __m512 a = _mm512_min_ps(az, _mm512_set1_ps(3.9999998f));
  const __m512i idx = _mm512_cvttps_epi32(_mm512_add_ps(a, a));
  const __m512 t = _mm512_sub_ps(a, _mm512_fmadd_ps(_mm512_cvtepi32_ps(idx), half, _mm512_set1_ps(0.25f)));
  __m512 p = _mm512_permutexvar_ps(idx, table(kErfA[8]));
  for (int k = 7; k >= 0; --k) p = _mm512_fmadd_ps(p, t, _mm512_permutexvar_ps(idx, table(kErfA[k])));
  __m512 e = _mm512_add_ps(_mm512_permutexvar_ps(idx, table(kErfHi)),
                           _mm512_fmadd_ps(p, t, _mm512_permutexvar_ps(idx, table(kErfLo))));
  e = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(az, _mm512_set1_ps(4.0f), _CMP_GE_OQ), e, one);
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(e), _mm512_and_si512(_mm512_castps_si512(z), signBit)));
}

// Exact GELU 0.5 x (1 + erf(x / sqrt 2)), in place.
void isa_gelu(float* x, int n) {
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), rsqrt2 = _mm512_set1_ps(0.70710678118654752440f);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __m512 e = erf16(_mm512_mul_ps(v, rsqrt2));
    _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, e)));
  }
  for (; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752440f));
}

// exp(x) for x <= 0, the AVX2 exp8_nonpos on 16 lanes.
inline __m512 exp16_nonpos(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_cvtps_epi32(n), 23);
  return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(y), e));
}

float isa_exp_shift_sum(float* x, int n, float scale) {
  __m512 m16 = _mm512_set1_ps(x[0]);
  int i = 0;
  for (; i + 16 <= n; i += 16) m16 = _mm512_max_ps(m16, _mm512_loadu_ps(x + i));
  float mx = _mm512_reduce_max_ps(m16);
  for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const __m512 sc = _mm512_set1_ps(scale), off = _mm512_set1_ps(-mx * scale);
  __m512 s16 = _mm512_setzero_ps();
  i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp16_nonpos(_mm512_fmadd_ps(_mm512_loadu_ps(x + i), sc, off));
    _mm512_storeu_ps(x + i, e);
    s16 = _mm512_add_ps(s16, e);
  }
  float sum = Avx512Vec::hsum(s16);
  for (; i < n; ++i) {
    const float e = std::exp(x[i] * scale - mx * scale);
    x[i] = e;
    sum += e;
  }
  return sum;
}

#include "gemm_driver.inl"

using G = Gemm<Avx512Vec, 14, 2>;  // 14 x 32 tile
constexpr GemmBlocking kBlocking{14, 32, 256, 112, 512};

void gemm_entry(const GemmCall& call, ThreadPool* pool) { G::gemm(call, pool, kBlocking); }

}  // namespace

const IsaKernels& isa_kernels_avx512() {
  static const IsaKernels k{Isa::Avx512, kBlocking, &gemm_entry, &G::dot, &G::axpy, &G::gemm_nn, 16, &isa_gelu, &isa_exp_shift_sum};
  return k;
}

}  // namespace cpu
}  // namespace edu
