// bf16 GEMM, AVX512_BF16 path: VDPBF16PS (_mm512_dpbf16_ps), 14 x 32 micro-tile (28 zmm accumulators,
// 2 weight registers, 1 broadcast). One zmm of a packed panel row = 16 columns x one K pair, the layout
// VDPBF16PS reads; A is packed as bf16 and its K pair (a[2p], a[2p+1]) is broadcast as one 32-bit word.
// Per lane VDPBF16PS computes c += a[2p+1] w[2p+1]; c += a[2p] w[2p] (Intel SDM pseudocode), the
// order of the scalar reference path.
//
// NOT EXECUTED ON HARDWARE: the development and CI machines have no AVX512_BF16. It is compiled, selected
// only when CPUID + XCR0 report AVX512F/BW/VL/DQ + AVX512_BF16, and its driver, tiles and indexing run in
// kernels/cpu/check/bf16_checks.cc over an emulated VDPBF16PS (EDU_BF16_EMULATE); the intrinsics
// themselves have not run.
#ifndef EDU_BF16_EMULATE
// GCC 12 warns (falsely) about _mm256_undefined_pd inside its own AVX-512 cast intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

#include <cstdint>
#include <cstring>

#include "bf16_kernels.h"

// The check program includes this file with EDU_BF16_NS set to a named namespace; normally anonymous.
#ifndef EDU_BF16_NS
#define EDU_BF16_NS
#endif

namespace edu {
namespace cpu {
namespace EDU_BF16_NS {

#ifndef EDU_BF16_EMULATE
// The instructions this path uses, in one place (kernels/cpu/check/bf16_checks.cc supplies an emulated
// Zmm with the same members).
struct Zmm {
  using reg = __m512;   // 16 fp32 accumulators
  using wreg = __m512i; // 16 bf16 pairs
  static inline reg zero() { return _mm512_setzero_ps(); }
  static inline reg loadu(const float* p) { return _mm512_loadu_ps(p); }
  static inline void storeu(float* p, reg r) { _mm512_storeu_ps(p, r); }
  static inline wreg load_pairs(const uint16_t* p) { return _mm512_load_si512(p); }  // 64-byte aligned
  static inline wreg bcast_pair(const uint16_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  static inline reg dp(reg acc, wreg a, wreg b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
  // 16 floats -> 16 bf16 (round to nearest even, NaN quieted), integer arithmetic like float_to_bf16.
  static inline void round_store16(const float* src, uint16_t* dst) {
    const __m512i u = _mm512_loadu_si512(src);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb)), 16);
    const __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x0040));
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)),
                                                  _mm512_set1_epi32(0x7F800000));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, r, q)));
  }
};
#endif

inline uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// A as bf16 bits, row stride kpad, zero filled past k.
void pack_a(const float* a, long lda, int rows, int k, int kpad, void* dst) {
  uint16_t* out = static_cast<uint16_t*>(dst);
  for (int i = 0; i < rows; ++i) {
    const float* src = a + static_cast<size_t>(i) * lda;
    uint16_t* d = out + static_cast<size_t>(i) * kpad;
    int j = 0;
    for (; j + 16 <= k; j += 16) Zmm::round_store16(src + j, d + j);
    for (; j < k; ++j) d[j] = to_bf16(src[j]);
    for (; j < kpad; ++j) d[j] = 0;
  }
}

struct DpTile {
  using AElem = uint16_t;
  static constexpr int MR = 14;
  static constexpr int NP = 2;

  template <int R, int P>
  __attribute__((always_inline)) static inline void tile(int len, const uint16_t* __restrict__ a, long lda,
                                                         const uint16_t* __restrict__ b, long ps, float* c, long ldc,
                                                         const float* bias, bool loadC) {
    typename Zmm::reg acc[R][P];
    if (loadC) {
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int j = 0; j < P; ++j) acc[i][j] = Zmm::loadu(c + i * ldc + 16 * j);
    } else if (bias != nullptr) {
#pragma GCC unroll 2
      for (int j = 0; j < P; ++j) {
        const typename Zmm::reg bj = Zmm::loadu(bias + 16 * j);
#pragma GCC unroll 16
        for (int i = 0; i < R; ++i) acc[i][j] = bj;
      }
    } else {
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int j = 0; j < P; ++j) acc[i][j] = Zmm::zero();
    }
    const uint16_t* ar[R];
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) ar[i] = a + i * lda;
    const int pairs = len / 2;
    for (int p = 0; p < pairs; ++p) {
      typename Zmm::wreg w[P];
#pragma GCC unroll 2
      for (int j = 0; j < P; ++j) w[j] = Zmm::load_pairs(b + j * ps + p * 32);
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) {
        const typename Zmm::wreg av = Zmm::bcast_pair(ar[i] + 2 * p);
#pragma GCC unroll 2
        for (int j = 0; j < P; ++j) acc[i][j] = Zmm::dp(acc[i][j], av, w[j]);
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
      for (int j = 0; j < P; ++j) Zmm::storeu(c + i * ldc + 16 * j, acc[i][j]);
  }
};

#include "gemm_bf16_driver.inl"

using G = Bf16Gemm<DpTile>;

void gemm_entry(const Bf16Call& call, ThreadPool* pool) { G::gemm(call, pool, 112, 512); }

}  // namespace EDU_BF16_NS

#ifndef EDU_BF16_EMULATE
const Bf16Kernels& bf16_kernels_avx512() {
  static const Bf16Kernels k{Bf16Isa::Avx512, true, 1, &pack_a, &gemm_entry};
  return k;
}
#endif

}  // namespace cpu
}  // namespace edu
