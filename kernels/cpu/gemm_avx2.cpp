// AVX2 + FMA path: 6 x 16 micro-tile (12 ymm accumulators, 2 B loads, 6 broadcasts per k).
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

#include "gemm_driver.inl"

using G = Gemm<Avx2Vec, 6, 2>;  // 6 x 16 tile
constexpr GemmBlocking kBlocking{6, 16, 256, 96, 384};

void gemm_entry(const GemmCall& call, ThreadPool* pool) { G::gemm(call, pool, kBlocking); }

}  // namespace

const IsaKernels& isa_kernels_avx2() {
  static const IsaKernels k{Isa::Avx2, kBlocking, &gemm_entry, &G::dot, &G::axpy, &G::gemm_nn, 8, &isa_gelu};
  return k;
}

}  // namespace cpu
}  // namespace edu
