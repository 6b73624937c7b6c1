// AVX2 + FMA path: 4 x 24 micro-tile (12 ymm accumulators, 3 B loads, 4 broadcasts per k).
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

struct Avx2Vec {
  using reg = __m256;
  static constexpr int W = 8;
  static inline reg zero() { return _mm256_setzero_ps(); }
  static inline reg load(const float* p) { return _mm256_load_ps(p); }
  static inline reg loadu(const float* p) { return _mm256_loadu_ps(p); }
  static inline void storeu(float* p, reg r) { _mm256_storeu_ps(p, r); }
  static inline reg bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static inline reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static inline reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static inline float hsum(reg r) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

// erf(z) with the table of erf_table.h (|error| < 1e-7 vs erff; NaN -> finite, callers multiply by x).
inline __m256 erf8(__m256 z) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), signBit = _mm256_set1_ps(-0.0f);
  const __m256 az = _mm256_andnot_ps(signBit, z);
  const __m256 a = _mm256_min_ps(az, _mm256_set1_ps(3.9999998f));  // NaN -> 3.9999998
  const __m256i idx = _mm256_cvttps_epi32(_mm256_add_ps(a, a));  // interval 0..7
  const __m256 t = _mm256_sub_ps(a, _mm256_fmadd_ps(_mm256_cvtepi32_ps(idx), half, _mm256_set1_ps(0.25f)));
  __m256 p = _mm256_permutevar8x32_ps(_mm256_load_ps(kErfA[8]), idx);
  for (int k = 7; k >= 0; --k) p = _mm256_fmadd_ps(p, t, _mm256_permutevar8x32_ps(_mm256_load_ps(kErfA[k]), idx));
  __m256 e = _mm256_add_ps(_mm256_permutevar8x32_ps(_mm256_load_ps(kErfHi), idx),
                           _mm256_fmadd_ps(p, t, _mm256_permutevar8x32_ps(_mm256_load_ps(kErfLo), idx)));
  e = _mm256_blendv_ps(e, one, _mm256_cmp_ps(az, _mm256_set1_ps(4.0f), _CMP_GE_OQ));
  return _mm256_or_ps(e, _mm256_and_ps(z, signBit));  // erf is odd
}

// Exact GELU 0.5 x (1 + erf(x / sqrt 2)), in place.
void isa_gelu(float* x, int n) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), rsqrt2 = _mm256_set1_ps(0.70710678118654752440f);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 e = erf8(_mm256_mul_ps(v, rsqrt2));
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, e)));
  }
  for (; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752440f));
}

// exp(x) for x <= 0 (inputs below -87.3 are clamped: result ~1e-38 instead of a denormal or 0).
// Cephes-style: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial, 2^n via the exponent bits (~1-2 ulp).
inline __m256 exp8_nonpos(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
  return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e));
}

float isa_exp_shift_sum(float* x, int n, float scale) {
  __m256 m8 = _mm256_set1_ps(x[0]);
  int i = 0;
  for (; i + 8 <= n; i += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(x + i));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  float mx = _mm_cvtss_f32(m4);
  for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const __m256 sc = _mm256_set1_ps(scale), off = _mm256_set1_ps(-mx * scale);
  __m256 s8 = _mm256_setzero_ps();
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8_nonpos(_mm256_fmadd_ps(_mm256_loadu_ps(x + i), sc, off));
    _mm256_storeu_ps(x + i, e);
    s8 = _mm256_add_ps(s8, e);
  }
  float sum = Avx2Vec::hsum(s8);
  for (; i < n; ++i) {
    const float e = std::exp(x[i] * scale - mx * scale);
    x[i] = e;
    sum += e;
  }
  return sum;
}

#include "gemm_driver.inl"

using G = Gemm<Avx2Vec, 4, 3>;  // 4 x 24 tile
constexpr GemmBlocking kBlocking{4, 24, 256, 128, 384};

void gemm_entry(const GemmCall& call, ThreadPool* pool) { G::gemm(call, pool, kBlocking); }

}  // namespace

const IsaKernels& isa_kernels_avx2() {
  static const IsaKernels k{Isa::Avx2, kBlocking, &gemm_entry, &G::dot, &G::axpy, &G::gemm_nn, 8, &isa_gelu, &isa_exp_shift_sum};
  return k;
}

}  // namespace cpu
}  // namespace edu
