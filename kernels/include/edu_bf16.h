// bf16 compute path of the CPU backend: bf16 x bf16 -> fp32 GEMM for the encoder's linear layers.
//
// Numerics (the same on every code path, so a portable path reproduces them):
//   * A linear layer's weight W [n, k] is rounded ONCE to bf16 (round to nearest even; NaN stays a
//     quiet NaN) and pre-packed when the encoder is built (pack_weight_bf16), never per call.
//   * The GEMM's A operand (the activations, fp32 in memory) is rounded to bf16 the same way when it
//     is packed at the start of each gemm_bf16 call.
//   * The product of two bf16 values is exact in fp32 (8 + 8 significant bits <= 24), so multiply-add
//     costs one rounding, that of the fp32 accumulation; accumulation is always fp32.
//   * Bias, epilogues (GELU / tanh) and everything outside the GEMMs stay fp32 (see encoder.cpp).
//
// Summation order of the register-tile paths (scalar, avx2, avx512): C = bias (or 0), then for each
// K block of kc, for each K pair (2p, 2p+1): c += a[2p+1] * w[2p+1]; c += a[2p] * w[2p]. That is the
// order Intel's pseudocode gives for VDPBF16PS (odd element first, each accumulation rounded to
// nearest even), so scalar and avx2 give bit-identical results, and avx512 (VDPBF16PS) is meant to;
// VDPBF16PS and TDPBF16PS also flush denormal inputs / outputs to zero, which the portable paths do not.
// AMX (TDPBF16PS) accumulates in its own order, so it agrees with the others to fp32 rounding only.
//
// Code paths (Bf16Isa): scalar (reference), avx2 (bf16 -> fp32 by a 16-bit shift / mask, then FMA),
// avx512 (AVX512_BF16 VDPBF16PS) and amx (AMX-BF16 tiles, TDPBF16PS). The avx512 and amx paths are
// compiled and selected by run-time detection only; they have NOT been executed on hardware with those
// instructions (the development and CI machines have AVX2 only). kernels/cpu/check/bf16_checks.cc runs
// their drivers and indexing over emulated instructions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "edu_cpu.h"

namespace edu {

/** Arithmetic of the CPU encoder's linear layers (the CUDA backend has its own Precision). */
enum class Dtype : int { Fp32 = 0, Bf16 = 1 };

const char* dtype_name(Dtype d);
/** "fp32" | "bf16"; throws std::invalid_argument otherwise. */
Dtype parse_dtype(const std::string& s);

namespace cpu {

/** bf16 GEMM code paths. */
enum class Bf16Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2, Amx = 3 };

const char* bf16_isa_name(Bf16Isa isa);
/**
 * True when this CPU + OS can run the path. amx also needs Linux's permission to use the AMX tile
 * data state (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)), requested once, on first query.
 * When false and `why` is given, it receives the reason.
 */
bool bf16_isa_supported(Bf16Isa isa, std::string* why = nullptr);
/** The best supported path: amx > avx512 (AVX512_BF16) > avx2 > scalar. */
Bf16Isa best_bf16_isa();
/**
 * Resolve a requested path name for bf16: "auto" (or empty) -> EDU_TRAIN_CPU_ISA when set -> best.
 * Names: amx, avx512, avx2, scalar. Throws std::invalid_argument for an unknown name and
 * std::runtime_error (with the reason) for a path this CPU / OS cannot run.
 */
Bf16Isa resolve_bf16_isa(const std::string& requested);
/** The fp32 path that runs everything around the bf16 GEMMs (LayerNorm, attention, GELU). */
Isa bf16_helper_isa(Bf16Isa isa);

/** float -> bf16 bits, round to nearest even; NaN -> quiet NaN of the same sign. */
inline uint16_t float_to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
/** x rounded to the nearest bf16 value, as a float. */
inline float round_to_bf16(float x) { return bf16_to_float(float_to_bf16(x)); }

/** 64-byte aligned raw buffer. */
class AlignedBytes {
 public:
  void resize(size_t bytes);
  void* data() { return ptr_.get(); }
  const void* data() const { return ptr_.get(); }
  size_t size() const { return n_; }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> ptr_;
  size_t n_ = 0;
};

/** Columns per packed panel (one 64-byte row of 16 column pairs per K pair). */
constexpr int kBf16PanelCols = 16;
/** K is zero padded to a multiple of this (one AMX tile depth: 32 bf16). */
constexpr int kBf16KAlign = 32;
/** K block of the packed layout (a multiple of kBf16KAlign). */
constexpr int kBf16Kc = 256;

/**
 * A weight W [n, k] in bf16, packed once in the ONE layout every bf16 path reads (scalar, avx2,
 * avx512 and amx share it):
 *   * K is zero padded to kpad = roundup(k, 32) and cut into blocks of kc = 256 (the last one shorter);
 *   * inside a block, N is cut into panels of 16 columns (zero padded past n);
 *   * a panel of a block with `len` K values is [len / 2][16][2]: K pairs interleaved, i.e. the 32-bit
 *     word (p, j) holds w[j][2p] in its low half and w[j][2p + 1] in its high half. That is the
 *     "VNNI" pair layout VDPBF16PS reads (one zmm = 16 columns x one K pair) and exactly an AMX B tile
 *     (16 rows of 64 bytes = 32 K values x 16 columns).
 * Panel p of block b starts at element b*kc*panels*16 + p*len*16; everything is 64-byte aligned.
 */
struct PackedBf16 {
  int n = 0, k = 0;
  int kpad = 0, kc = kBf16Kc;
  int panels = 0;  // ceil(n / 16)
  AlignedBytes data;

  const uint16_t* base() const { return static_cast<const uint16_t*>(data.data()); }
  int block_len(int kblock) const {
    const int k0 = kblock * kc;
    return (kpad - k0) < kc ? (kpad - k0) : kc;
  }
  const uint16_t* panel(int kblock, int p) const {
    return base() + static_cast<size_t>(kblock) * kc * panels * kBf16PanelCols +
           static_cast<size_t>(p) * block_len(kblock) * kBf16PanelCols;
  }
  size_t bytes() const { return data.size(); }
};

/** Round W [n, k] (row-major, y = x W^T) to bf16 and pack it. Throws std::invalid_argument on bad shapes. */
PackedBf16 pack_weight_bf16(const float* w, int n, int k);

/** Scratch for the packed A operand, reused across calls (one per encoder; not thread-safe). */
class Bf16Workspace {
 public:
  void* get(size_t bytes) {
    if (bytes > buf_.size()) buf_.resize(bytes);
    return buf_.data();
  }
  size_t bytes() const { return buf_.size(); }

 private:
  AlignedBytes buf_;
};

struct Bf16Context {
  Bf16Isa isa = Bf16Isa::Scalar;
  ThreadPool* pool = nullptr;
  Bf16Workspace* ws = nullptr;  // null: a temporary per call
};

/**
 * C[m, n] = bf16(A) · bf16(W)^T (+ bias[n]), fp32 accumulation, then the epilogue (fp32, on the
 * helper path's exact GELU / tanh). A is [m, k] fp32 with row stride lda; C has row stride ldc.
 * Throws std::invalid_argument for bad shapes and std::runtime_error when ctx.isa cannot run here.
 */
void gemm_bf16(const Bf16Context& ctx, const float* a, long lda, const PackedBf16& w, const float* bias, float* c,
               long ldc, int m, Epilogue epilogue = Epilogue::None);

/** Bytes of the A workspace gemm_bf16 needs for m rows of k (for memory estimates). */
size_t bf16_workspace_bytes(Bf16Isa isa, int m, int k);

}  // namespace cpu
}  // namespace edu
