// AVX2 + FMA kernels of the trainable head (compiled with -mavx2 -mfma because of the file name;
// only called after a run-time check, see best_kernels() in head.cpp).
#include "head.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace edu {
namespace head {
namespace detail {
namespace {

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}

void dot_rows(const float* x, const float* w, const float* bias, int64_t c, int64_t h, float* out) {
  int64_t r = 0;
  // Four output rows at a time share each load of x.
  for (; r + 4 <= c; r += 4) {
    const float *w0 = w + r * h, *w1 = w0 + h, *w2 = w1 + h, *w3 = w2 + h;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t j = 0;
    for (; j + 8 <= h; j += 8) {
      __m256 xv = _mm256_loadu_ps(x + j);
      a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w0 + j), a0);
      a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w1 + j), a1);
      a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w2 + j), a2);
      a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w3 + j), a3);
    }
    float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (; j < h; ++j) {
      s0 += x[j] * w0[j]; s1 += x[j] * w1[j]; s2 += x[j] * w2[j]; s3 += x[j] * w3[j];
    }
    float b0 = bias ? bias[r] : 0.f, b1 = bias ? bias[r + 1] : 0.f, b2 = bias ? bias[r + 2] : 0.f,
          b3 = bias ? bias[r + 3] : 0.f;
    out[r] = s0 + b0; out[r + 1] = s1 + b1; out[r + 2] = s2 + b2; out[r + 3] = s3 + b3;
  }
  for (; r < c; ++r) {
    const float* wr = w + r * h;
    __m256 a = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= h; j += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(wr + j), a);
    float s = hsum(a);
    for (; j < h; ++j) s += x[j] * wr[j];
    out[r] = s + (bias ? bias[r] : 0.f);
  }
}

void axpy(float a, const float* x, int64_t n, float* y) {
  __m256 av = _mm256_set1_ps(a);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_ps(y + j, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + j), _mm256_loadu_ps(y + j)));
  for (; j < n; ++j) y[j] += a * x[j];
}

void outer_acc(const float* g, const float* x, int64_t c, int64_t h, float* acc) {
  for (int64_t r = 0; r < c; ++r) axpy(g[r], x, h, acc + r * h);
}

double sumsq(const float* x, int64_t n) {
  // Float lanes over blocks of 1024, flushed to double, so long vectors keep their precision.
  double total = 0;
  int64_t j = 0;
  while (j < n) {
    int64_t end = std::min(n, j + 1024);
    __m256 a = _mm256_setzero_ps();
    for (; j + 8 <= end; j += 8) {
      __m256 v = _mm256_loadu_ps(x + j);
      a = _mm256_fmadd_ps(v, v, a);
    }
    double s = hsum(a);
    for (; j < end; ++j) s += double(x[j]) * x[j];
    total += s;
  }
  return total;
}

void scale(float a, float* y, int64_t n) {
  __m256 av = _mm256_set1_ps(a);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(av, _mm256_loadu_ps(y + j)));
  for (; j < n; ++j) y[j] *= a;
}

// Eigen's rational approximation of tanh for float (generic_fast_tanh_float): within 3e-7 absolute of
// tanh over all floats (measured against double tanh); std::tanh costs ~18 ns and dominated the pooler head.
inline __m256 tanh8(__m256 x) {
  const __m256 clamp = _mm256_set1_ps(7.90531110763549805f);
  __m256 xc = _mm256_max_ps(_mm256_min_ps(x, clamp), _mm256_sub_ps(_mm256_setzero_ps(), clamp));
  __m256 x2 = _mm256_mul_ps(xc, xc);
  __m256 p = _mm256_set1_ps(-2.76076847742355e-16f);
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.00018790482477e-13f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-8.60467152213735e-11f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(5.12229709037114e-08f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(1.48572235717979e-05f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(6.37261928875436e-04f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(4.89352455891786e-03f));
  p = _mm256_mul_ps(p, xc);
  __m256 q = _mm256_set1_ps(1.19825839466702e-06f);
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(1.18534705686654e-04f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(2.26843463243900e-03f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(4.89352518554385e-03f));
  __m256 r = _mm256_div_ps(p, q);
  // Below 4e-4, tanh(x) == x in float.
  __m256 tiny = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), x), _mm256_set1_ps(0.0004f), _CMP_LT_OQ);
  return _mm256_blendv_ps(r, x, tiny);
}

void bias_tanh(float* x, const float* bias, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_ps(x + j, tanh8(_mm256_add_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(bias + j))));
  if (j < n) {
    float tx[8] = {0}, tb[8] = {0};
    for (int64_t q = j; q < n; ++q) { tx[q - j] = x[q]; tb[q - j] = bias[q]; }
    _mm256_storeu_ps(tx, tanh8(_mm256_add_ps(_mm256_loadu_ps(tx), _mm256_loadu_ps(tb))));
    for (int64_t q = j; q < n; ++q) x[q] = tx[q - j];
  }
}

void dropout(const float* x, float* y, float* mask, int64_t n, uint32_t* st, uint32_t threshold, float scale) {
  __m256i s0 = _mm256_loadu_si256((const __m256i*)st), s1 = _mm256_loadu_si256((const __m256i*)(st + 8)),
          s2 = _mm256_loadu_si256((const __m256i*)(st + 16)), s3 = _mm256_loadu_si256((const __m256i*)(st + 24));
  // unsigned r >= threshold  <=>  signed (r ^ 0x80000000) > (threshold ^ 0x80000000) - 1 (threshold > 0 here)
  const __m256i bias = _mm256_set1_epi32(int(0x80000000u));
  const __m256i thr = _mm256_set1_epi32(int((threshold ^ 0x80000000u) - 1u));
  const __m256 vscale = _mm256_set1_ps(scale);
  for (int64_t j = 0; j < n; j += 8) {
    __m256i t = _mm256_xor_si256(s0, _mm256_slli_epi32(s0, 11));
    s0 = s1;
    s1 = s2;
    s2 = s3;
    s3 = _mm256_xor_si256(_mm256_xor_si256(s3, _mm256_srli_epi32(s3, 19)), _mm256_xor_si256(t, _mm256_srli_epi32(t, 8)));
    __m256i keep = _mm256_cmpgt_epi32(_mm256_xor_si256(s3, bias), thr);
    __m256 m = _mm256_and_ps(_mm256_castsi256_ps(keep), vscale);
    if (j + 8 <= n) {
      _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), m));
      if (mask) _mm256_storeu_ps(mask + j, m);
    } else {
      float mm[8];
      _mm256_storeu_ps(mm, m);
      for (int64_t q = j; q < n; ++q) {
        y[q] = x[q] * mm[q - j];
        if (mask) mask[q] = mm[q - j];
      }
    }
  }
  _mm256_storeu_si256((__m256i*)st, s0);
  _mm256_storeu_si256((__m256i*)(st + 8), s1);
  _mm256_storeu_si256((__m256i*)(st + 16), s2);
  _mm256_storeu_si256((__m256i*)(st + 24), s3);
}

void adamw(float* p, const float* g, float* m, float* v, int64_t n, float decay, float b1, float b2,
           float step_size, float bc2_sqrt, float eps) {
  const __m256 vdecay = _mm256_set1_ps(decay), vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2),
               v1b1 = _mm256_set1_ps(1.f - b1), v1b2 = _mm256_set1_ps(1.f - b2),
               vss = _mm256_set1_ps(step_size), vbc = _mm256_set1_ps(bc2_sqrt), veps = _mm256_set1_ps(eps);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 gv = _mm256_loadu_ps(g + j);
    __m256 pv = _mm256_mul_ps(_mm256_loadu_ps(p + j), vdecay);
    __m256 mv = _mm256_fmadd_ps(vb1, _mm256_loadu_ps(m + j), _mm256_mul_ps(v1b1, gv));
    __m256 vv = _mm256_fmadd_ps(vb2, _mm256_loadu_ps(v + j), _mm256_mul_ps(v1b2, _mm256_mul_ps(gv, gv)));
    __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), vbc), veps);
    pv = _mm256_sub_ps(pv, _mm256_mul_ps(vss, _mm256_div_ps(mv, den)));
    _mm256_storeu_ps(p + j, pv);
    _mm256_storeu_ps(m + j, mv);
    _mm256_storeu_ps(v + j, vv);
  }
  if (j < n) scalar_kernels().adamw(p + j, g + j, m + j, v + j, n - j, decay, b1, b2, step_size, bc2_sqrt, eps);
}

// ---- GEMM: packed panels and a 6x16 register tile (12 accumulators + 2 B loads + 1 broadcast).
constexpr int64_t MR = 6, NR = 16, KC = 256, MC = 96;

inline void micro_6x16(int64_t kb, const float* ap, const float* bp, float* c, int64_t ldc, bool acc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
         c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t p = 0; p < kb; ++p) {
    __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
    __m256 a;
    a = _mm256_broadcast_ss(ap + 0); c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(ap + 1); c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(ap + 2); c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(ap + 3); c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(ap + 4); c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(ap + 5); c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51);
    ap += MR;
    bp += NR;
  }
  __m256 rows[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int64_t i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (acc) {
      rows[i][0] = _mm256_add_ps(rows[i][0], _mm256_loadu_ps(ci));
      rows[i][1] = _mm256_add_ps(rows[i][1], _mm256_loadu_ps(ci + 8));
    }
    _mm256_storeu_ps(ci, rows[i][0]);
    _mm256_storeu_ps(ci + 8, rows[i][1]);
  }
}

void gemm(bool trans_a, int64_t m, int64_t n0, int64_t n1, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  if (m <= 0 || n1 <= n0) return;
  if (k <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::memset(c + i * ldc + n0, 0, sizeof(float) * (n1 - n0));
    return;
  }
  thread_local std::vector<float> apack, bpack;
  const int64_t ncols = n1 - n0, nsl = (ncols + NR - 1) / NR;
  bpack.resize(size_t(nsl * NR * KC));
  apack.resize(size_t(((MC + MR - 1) / MR) * MR * KC));
  float tile[MR * NR];
  for (int64_t k0 = 0; k0 < k; k0 += KC) {
    const int64_t kb = std::min(KC, k - k0);
    const bool acc = accumulate || k0 > 0;  // k blocks are summed in a fixed order
    // Pack B[k0:k0+kb, n0:n1] into 16-column slivers, zero-padded at the right edge.
    for (int64_t s = 0; s < nsl; ++s) {
      const int64_t j0 = n0 + s * NR, w = std::min(NR, n1 - j0);
      float* dst = bpack.data() + s * NR * kb;
      for (int64_t p = 0; p < kb; ++p) {
        const float* src = b + (k0 + p) * ldb + j0;
        if (w == NR) {
          std::memcpy(dst + p * NR, src, sizeof(float) * NR);
        } else {
          for (int64_t q = 0; q < NR; ++q) dst[p * NR + q] = q < w ? src[q] : 0.f;
        }
      }
    }
    for (int64_t i0 = 0; i0 < m; i0 += MC) {
      const int64_t mb = std::min(MC, m - i0), msl = (mb + MR - 1) / MR;
      // Pack op(A)[i0:i0+mb, k0:k0+kb] into 6-row slivers, zero-padded at the bottom edge.
      for (int64_t s = 0; s < msl; ++s) {
        float* dst = apack.data() + s * MR * kb;
        const int64_t r0 = i0 + s * MR, h = std::min(MR, m - r0);
        for (int64_t p = 0; p < kb; ++p)
          for (int64_t q = 0; q < MR; ++q) {
            float v = 0.f;
            if (q < h) v = trans_a ? a[(k0 + p) * lda + (r0 + q)] : a[(r0 + q) * lda + (k0 + p)];
            dst[p * MR + q] = v;
          }
      }
      for (int64_t sj = 0; sj < nsl; ++sj) {
        const int64_t j0 = n0 + sj * NR, w = std::min(NR, n1 - j0);
        for (int64_t si = 0; si < msl; ++si) {
          const int64_t r0 = i0 + si * MR, h = std::min(MR, m - r0);
          const float* ap = apack.data() + si * MR * kb;
          const float* bp = bpack.data() + sj * NR * kb;
          if (h == MR && w == NR) {
            micro_6x16(kb, ap, bp, c + r0 * ldc + j0, ldc, acc);
          } else {
            micro_6x16(kb, ap, bp, tile, NR, false);
            for (int64_t q = 0; q < h; ++q)
              for (int64_t t = 0; t < w; ++t) {
                float* dst = c + (r0 + q) * ldc + j0 + t;
                *dst = acc ? *dst + tile[q * NR + t] : tile[q * NR + t];
              }
          }
        }
      }
    }
  }
}

const Kernels kAvx2 = {"avx2", dot_rows, outer_acc, axpy, sumsq, scale, bias_tanh, dropout, adamw, gemm};

}  // namespace

const Kernels* avx2_kernels() { return &kAvx2; }

}  // namespace detail
}  // namespace head
}  // namespace edu

#else  // built without -mavx2 (should not happen through CMake; keeps a standalone build linking)

namespace edu {
namespace head {
namespace detail {
const Kernels* avx2_kernels() { return nullptr; }
}  // namespace detail
}  // namespace head
}  // namespace edu

#endif
