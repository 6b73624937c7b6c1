// bf16 GEMM, AVX2 + FMA path (no bf16 instructions): 6 x 16 micro-tile. The packed weight row of one
// K pair is 16 32-bit words (w[2p] low half, w[2p+1] high half); a 256-bit load gives 8 columns, and
// the fp32 values are the high half masked (odd k) and the word shifted left by 16 (even k): a bf16 is
// the top 16 bits of the fp32 with the same value. A is packed as floats already rounded to bf16, so
// it is broadcast like fp32. Same summation order as the scalar path (bit-identical results).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "bf16_kernels.h"

namespace edu {
namespace cpu {
namespace {

inline uint32_t round_bits(uint32_t u) {
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u | 0x00400000u) & 0xFFFF0000u;
  return (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
}

// Round to nearest even on 8 floats at once (integer arithmetic, identical to round_bits).
inline __m256i round8(__m256i u) {
  const __m256i absMask = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
  const __m256i hi = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u)), quiet = _mm256_set1_epi32(0x00400000);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_and_si256(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb)), hi);
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absMask), inf);
  const __m256i q = _mm256_and_si256(_mm256_or_si256(u, quiet), hi);
  return _mm256_blendv_epi8(r, q, nan);
}

void pack_a(const float* a, long lda, int rows, int k, int kpad, void* dst) {
  float* out = static_cast<float*>(dst);
  for (int i = 0; i < rows; ++i) {
    const float* src = a + static_cast<size_t>(i) * lda;
    float* d = out + static_cast<size_t>(i) * kpad;
    int j = 0;
    for (; j + 8 <= k; j += 8)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + j),
                          round8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j))));
    for (; j < k; ++j) {
      uint32_t u;
      std::memcpy(&u, src + j, 4);
      u = round_bits(u);
      std::memcpy(d + j, &u, 4);
    }
    for (; j < kpad; ++j) d[j] = 0.0f;
  }
}

struct Avx2Tile {
  using AElem = float;
  static constexpr int MR = 6;
  static constexpr int NP = 1;

  template <int R, int P>
  __attribute__((always_inline)) static inline void tile(int len, const float* __restrict__ a, long lda,
                                                         const uint16_t* __restrict__ b, long /*ps*/, float* c,
                                                         long ldc, const float* bias, bool loadC) {
    __m256 acc[R][2];
    if (loadC) {
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        acc[i][0] = _mm256_loadu_ps(c + i * ldc);
        acc[i][1] = _mm256_loadu_ps(c + i * ldc + 8);
      }
    } else if (bias != nullptr) {
      const __m256 b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        acc[i][0] = b0;
        acc[i][1] = b1;
      }
    } else {
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    }
    const float* ar[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) ar[i] = a + i * lda;
    const int pairs = len / 2;
    for (int p = 0; p < pairs; ++p) {
      const __m256i* row = reinterpret_cast<const __m256i*>(b + p * 32);
      // odd k: the high halves
      __m256 w0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_srli_epi32(_mm256_load_si256(row), 16), 16));
      __m256 w1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_srli_epi32(_mm256_load_si256(row + 1), 16), 16));
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const __m256 av = _mm256_broadcast_ss(ar[i] + 2 * p + 1);
        acc[i][0] = _mm256_fmadd_ps(av, w0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(av, w1, acc[i][1]);
      }
      // even k: the low halves moved up
      w0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_load_si256(row), 16));
      w1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_load_si256(row + 1), 16));
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const __m256 av = _mm256_broadcast_ss(ar[i] + 2 * p);
        acc[i][0] = _mm256_fmadd_ps(av, w0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(av, w1, acc[i][1]);
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      _mm256_storeu_ps(c + i * ldc, acc[i][0]);
      _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
    }
  }
};

#include "gemm_bf16_driver.inl"

using G = Bf16Gemm<Avx2Tile>;

void gemm_entry(const Bf16Call& call, ThreadPool* pool) { G::gemm(call, pool, 120, 384); }

}  // namespace

const Bf16Kernels& bf16_kernels_avx2() {
  static const Bf16Kernels k{Bf16Isa::Avx2, false, 1, &pack_a, &gemm_entry};
  return k;
}

}  // namespace cpu
}  // namespace edu
