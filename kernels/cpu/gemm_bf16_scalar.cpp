// bf16 GEMM, portable reference path: plain C++ over the shared packed layout, in exactly the
// summation order of edu_bf16.h. Compiled with the baseline flags (no FMA instructions; products of
// two bf16 values are exact in fp32, so multiply-then-add rounds exactly like a fused multiply-add).
#include <cstdint>
#include <cstring>

#include "bf16_kernels.h"

// GCC 12's SLP vectoriser turned the per-row (a[2p], a[2p+1]) reads of the tile below into 16-byte
// loads that also touch the row AFTER the tile (unused lanes), reading past the end of the packed A
// (a segfault when that is the end of a page; found with a guard-page harness). This is the reference
// path: keep it plain.
#pragma GCC optimize("no-tree-vectorize")

namespace edu {
namespace cpu {
namespace {

inline float widen(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

inline uint32_t round_bits(uint32_t u) {  // fp32 bits -> fp32 bits of the nearest bf16 (RNE), NaN quieted
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u | 0x00400000u) & 0xFFFF0000u;
  return (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
}

// A as floats holding bf16 values, row stride kpad, zero filled past k.
void pack_a(const float* a, long lda, int rows, int k, int kpad, void* dst) {
  float* out = static_cast<float*>(dst);
  for (int i = 0; i < rows; ++i) {
    const float* src = a + static_cast<size_t>(i) * lda;
    float* d = out + static_cast<size_t>(i) * kpad;
    for (int j = 0; j < k; ++j) {
      uint32_t u;
      std::memcpy(&u, src + j, 4);
      u = round_bits(u);
      std::memcpy(d + j, &u, 4);
    }
    for (int j = k; j < kpad; ++j) d[j] = 0.0f;
  }
}

struct ScalarTile {
  using AElem = float;
  static constexpr int MR = 4;
  static constexpr int NP = 1;

  template <int R, int P>
  static void tile(int len, const float* a, long lda, const uint16_t* b, long /*ps*/, float* c, long ldc,
                   const float* bias, bool loadC) {
    float acc[R][16];
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < 16; ++j) acc[i][j] = loadC ? c[i * ldc + j] : (bias ? bias[j] : 0.0f);
    for (int p = 0; p < len / 2; ++p) {
      const uint16_t* row = b + p * 32;  // [16 columns][2]
      float bo[16], be[16];
      for (int j = 0; j < 16; ++j) {
        be[j] = widen(row[2 * j]);
        bo[j] = widen(row[2 * j + 1]);
      }
      for (int i = 0; i < R; ++i) {
        const float ao = a[i * lda + 2 * p + 1], ae = a[i * lda + 2 * p];
        for (int j = 0; j < 16; ++j) acc[i][j] += ao * bo[j];  // exact product: one rounding
        for (int j = 0; j < 16; ++j) acc[i][j] += ae * be[j];
      }
    }
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < 16; ++j) c[i * ldc + j] = acc[i][j];
  }
};

#include "gemm_bf16_driver.inl"

using G = Bf16Gemm<ScalarTile>;

void gemm_entry(const Bf16Call& call, ThreadPool* pool) { G::gemm(call, pool, 64, 256); }

}  // namespace

const Bf16Kernels& bf16_kernels_scalar() {
  static const Bf16Kernels k{Bf16Isa::Scalar, false, 1, &pack_a, &gemm_entry};
  return k;
}

}  // namespace cpu
}  // namespace edu
