// edu-train kernel interface: the one header every backend (CPU now, CUDA later) implements.
//
// Everything here is plain data: raw float pointers, shapes, row strides. No allocation policy,
// no threads, no Node. A backend provides the same operations in its own namespace
// (edu::cpu in edu_cpu.h; edu::cuda later) taking its own execution context as the first argument.
//
// Conventions (all backends):
//   * Row-major float32. "ld*" is the distance in floats between consecutive rows.
//   * Linear layers follow PyTorch: y = x W^T + b with W stored [out, in].
//   * GELU is the exact erf form 0.5 x (1 + erf(x / sqrt 2)).
//   * LayerNorm uses the biased variance with eps inside the square root.
//   * Attention masks are per key: mask[b * seqLen + j] == 1 means key j of sequence b is visible.
//     Masked keys get probability exactly 0. A query whose keys are ALL masked gets uniform weights
//     over all keys (what Hugging Face computes when it adds finfo(float32).min to every score).
#pragma once

#include <cstddef>
#include <cstdint>

namespace edu {

/** Instruction-set paths of the CPU backend (the CUDA backend ignores this). */
enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

/** Element-wise epilogue fused into a GEMM after the bias. */
enum class Epilogue : int { None = 0, Gelu = 1, Tanh = 2 };

/** Position-id scheme of the embeddings. */
enum class PositionStyle : int { Absolute = 0, Roberta = 1 };

const char* isa_name(Isa isa);

/** Shape of the multi-head attention core. */
struct AttentionShape {
  int batch = 0;
  int seqLen = 0;
  int heads = 0;
  int headDim = 0;
};

/** Where q, k, v live: q[(b * seqLen + i) * ldq + h * headDim + d], likewise k (ldk) and v (ldv). */
struct AttentionTensors {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  long ldq = 0, ldk = 0, ldv = 0;
  const int32_t* mask = nullptr;  // [batch, seqLen], 0/1
  float* out = nullptr;           // out[(b * seqLen + i) * ldo + h * headDim + d]
  long ldo = 0;
};

/** Embedding tables and ids for the gather word + token type + position. */
struct EmbeddingTables {
  const float* word = nullptr;      // [vocab, E]
  const float* position = nullptr;  // [maxPositions, E]
  const float* tokenType = nullptr; // [typeVocab, E]
  int dim = 0;                      // E
};

}  // namespace edu
