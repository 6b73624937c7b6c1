// Internal to the CPU backend: the per-ISA function table filled by gemm_scalar.cpp,
// gemm_avx2.cpp and gemm_avx512.cpp (each compiled with its own -m flags).
#pragma once

#include <cstddef>
#include <cstdint>

#include "edu_cpu.h"

namespace edu {
namespace cpu {

/** Blocking parameters of one ISA's GEMM (mr x nr micro-tile; kc, mc, nc cache blocks). */
struct GemmBlocking {
  int mr, nr, kc, mc, nc;
};

struct GemmCall {
  const float* a;
  long lda;
  bool transA;
  const PackedMatrix* w;
  const float* bias;
  float* c;
  long ldc;
  int m;
  Epilogue epilogue;
};

struct IsaKernels {
  Isa isa;
  GemmBlocking blocking;
  void (*gemm)(const GemmCall& call, ThreadPool* pool);
  float (*dot)(const float* x, const float* y, int n);
  /** y += a * x */
  void (*axpy)(float a, const float* x, float* y, int n);
  /** C[m, n] = A[m, k] · B[k, n], row-major with strides; n must be a multiple of vecWidth. */
  void (*gemm_nn)(int m, int n, int k, const float* a, long lda, const float* b, long ldb, float* c, long ldc);
  /** SIMD width in floats (1 for scalar). */
  int vecWidth;
  /** In-place exact GELU (vectorised erf on the SIMD paths, std::erf on scalar). */
  void (*gelu)(float* x, int n);
  /** Softmax numerator in place: x[j] = exp(scale * (x[j] - max(x))) over n >= 1 values (scale > 0);
   *  returns the sum of the new x[j]. */
  float (*exp_shift_sum)(float* x, int n, float scale);
};

const IsaKernels& isa_kernels_scalar();
const IsaKernels& isa_kernels_avx2();
const IsaKernels& isa_kernels_avx512();
/** The table for `isa` (throws if the path was not compiled in). */
const IsaKernels& isa_kernels(Isa isa);

/** Element-wise epilogues, shared by every GEMM path (plain functions: no ISA flags). */
void epilogue_rows(Epilogue ep, float* c, long ldc, int rows, int cols);

}  // namespace cpu
}  // namespace edu
