// Internal to the CPU backend: the per-path table of the bf16 GEMM (gemm_bf16_scalar.cpp,
// gemm_bf16_avx2.cpp, gemm_bf16_avx512bf16.cpp, gemm_bf16_amx.cpp, each compiled with its own -m
// flags; gemm_bf16.cpp packs, dispatches and resolves paths).
#pragma once

#include <cstddef>
#include <cstdint>

#include "edu_bf16.h"

namespace edu {
namespace cpu {

/**
 * One GEMM call as the kernels see it: A already rounded and packed by the path's pack_a, the weight as
 * plain fields of its PackedBf16 (the ISA files never call inline code shared with other translation
 * units: a copy compiled with AVX-512 flags could be the one the linker keeps).
 */
struct Bf16Call {
  const void* a;     // packed A: rows [0, m) (zero rows up to the path's mAlign), lda elements per row
  long lda;          // = kpad
  const uint16_t* w;  // PackedBf16 data
  int n, kpad, kc, panels;
  const float* bias;  // [n] or null
  float* c;
  long ldc;
  int m;
  Epilogue epilogue;
  void (*gelu)(float* x, int n);  // exact GELU of the fp32 helper path (in place)
};

struct Bf16Kernels {
  Bf16Isa isa;
  /** A packed as bf16 bits (uint16) when true; as floats holding bf16 values otherwise. */
  bool aIsBf16;
  /** Packed A has its row count rounded up to a multiple of this (extra rows are zero). */
  int mAlign;
  /**
   * Rounds rows [0, rows) of A (row stride lda, k values) to bf16 into dst (row stride kpad elements of
   * the packed type), zero filling columns [k, kpad). Bit-identical to float_to_bf16 on every path.
   */
  void (*pack_a)(const float* a, long lda, int rows, int k, int kpad, void* dst);
  void (*gemm)(const Bf16Call& call, ThreadPool* pool);
};

const Bf16Kernels& bf16_kernels_scalar();
const Bf16Kernels& bf16_kernels_avx2();
const Bf16Kernels& bf16_kernels_avx512();
const Bf16Kernels& bf16_kernels_amx();

/** Plain fp32 epilogue (tanh / std::erf GELU) from gemm.cpp, shared by every path. */
void epilogue_rows(Epilogue ep, float* c, long ldc, int rows, int cols);

}  // namespace cpu
}  // namespace edu
