// GEMM entry point: weight packing and run-time ISA dispatch.
#include <cmath>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "isa_kernels.h"

namespace edu {
namespace cpu {

void AlignedFloats::resize(size_t n) {
  if (n == 0) {
    ptr_.reset();
    n_ = 0;
    return;
  }
  const size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (p == nullptr) throw std::bad_alloc();
  ptr_.reset(p);
  n_ = n;
}

const IsaKernels& isa_kernels(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return isa_kernels_avx512();
    case Isa::Avx2: return isa_kernels_avx2();
    case Isa::Scalar: return isa_kernels_scalar();
  }
  throw std::invalid_argument("unknown ISA");
}

PackedMatrix pack_weight(Isa isa, const float* w, int n, int k) {
  if (n <= 0 || k < 0) throw std::invalid_argument("pack_weight: bad shape");
  const GemmBlocking& bl = isa_kernels(isa).blocking;
  PackedMatrix p;
  p.isa = isa;
  p.n = n;
  p.k = k;
  p.nr = bl.nr;
  p.kc = bl.kc;
  p.panels = (n + bl.nr - 1) / bl.nr;
  const int nr = bl.nr;
  p.data.resize(static_cast<size_t>(p.panels) * nr * (k > 0 ? k : 1));
  float* dst = p.data.data();
  for (int k0 = 0; k0 < k; k0 += bl.kc) {
    const int kc = (k - k0) < bl.kc ? (k - k0) : bl.kc;
    for (int pi = 0; pi < p.panels; ++pi) {
      float* panel = dst + static_cast<size_t>(k0) * p.panels * nr + static_cast<size_t>(pi) * kc * nr;
      for (int j = 0; j < nr; ++j) {
        const int col = pi * nr + j;
        if (col < n) {
          const float* src = w + static_cast<size_t>(col) * k + k0;
          for (int kk = 0; kk < kc; ++kk) panel[kk * nr + j] = src[kk];
        } else {
          for (int kk = 0; kk < kc; ++kk) panel[kk * nr + j] = 0.0f;
        }
      }
    }
  }
  return p;
}

void gemm(const Context& ctx, const float* a, long lda, bool transA, const PackedMatrix& w,
          const float* bias, float* c, long ldc, int m, Epilogue epilogue) {
  if (w.isa != ctx.isa)
    throw std::logic_error(std::string("gemm: weight packed for ") + isa_name(w.isa) + " but context is " +
                           isa_name(ctx.isa));
  GemmCall call{a, lda, transA, &w, bias, c, ldc, m, epilogue};
  isa_kernels(ctx.isa).gemm(call, ctx.pool);
}

static inline float gelu1(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752440f)); }

void epilogue_rows(Epilogue ep, float* c, long ldc, int rows, int cols) {
  for (int r = 0; r < rows; ++r) {
    float* row = c + static_cast<size_t>(r) * ldc;
    if (ep == Epilogue::Gelu)
      for (int j = 0; j < cols; ++j) row[j] = gelu1(row[j]);
    else if (ep == Epilogue::Tanh)
      for (int j = 0; j < cols; ++j) row[j] = std::tanh(row[j]);
  }
}

}  // namespace cpu
}  // namespace edu
