// Portable path: the same driver and micro-kernel as the SIMD paths, over a 1-lane "vector".
// Compiled with the baseline flags only (the compiler may still use SSE2).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "isa_kernels.h"

namespace edu {
namespace cpu {
namespace {

struct ScalarVec {
  using reg = float;
  static constexpr int W = 1;
  static inline reg zero() { return 0.0f; }
  static inline reg load(const float* p) { return *p; }
  static inline reg loadu(const float* p) { return *p; }
  static inline void storeu(float* p, reg r) { *p = r; }
  static inline reg bcast(const float* p) { return *p; }
  static inline reg fma(reg a, reg b, reg c) { return a * b + c; }
  static inline reg add(reg a, reg b) { return a + b; }
  static inline float hsum(reg r) { return r; }
};

void isa_gelu(float* x, int n) {
  for (int i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752440f));
}

float isa_exp_shift_sum(float* x, int n, float scale) {
  float mx = x[0];
  for (int i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float e = std::exp((x[i] - mx) * scale);
    x[i] = e;
    sum += e;
  }
  return sum;
}

#include "gemm_driver.inl"

using G = Gemm<ScalarVec, 4, 8>;  // 4 x 8 tile
constexpr GemmBlocking kBlocking{4, 8, 256, 64, 256};

void gemm_entry(const GemmCall& call, ThreadPool* pool) { G::gemm(call, pool, kBlocking); }

}  // namespace

const IsaKernels& isa_kernels_scalar() {
  static const IsaKernels k{Isa::Scalar, kBlocking, &gemm_entry, &G::dot, &G::axpy, &G::gemm_nn, 1, &isa_gelu, &isa_exp_shift_sum};
  return k;
}

}  // namespace cpu
}  // namespace edu
