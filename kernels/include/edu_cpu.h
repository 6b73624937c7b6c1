// CPU backend of the kernel interface (see edu_kernels.h for the shared conventions).
//
// Every function takes a Context: the ISA path to use and the thread pool to split work over
// (null pool = run on the calling thread). Functions validate nothing beyond what is needed to stay
// in bounds; callers (the Encoder, the N-API layer) check shapes first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "edu_kernels.h"
#include "edu_thread_pool.h"

namespace edu {
namespace cpu {

/** What the CPU and the OS support (CPUID + XGETBV), detected once. */
struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512bf16 = false;
  bool amxTile = false;
  bool amxBf16 = false;
  bool osAvx = false;     // XCR0 has SSE + AVX state
  bool osAvx512 = false;  // XCR0 has opmask + ZMM state
  bool osAmx = false;     // XCR0 has tile config + tile data state
  int logicalCpus = 1;
};

const CpuFeatures& cpu_features();

/** True when this CPU + OS can run the path. */
bool isa_supported(Isa isa);
/** The best supported path (avx512 > avx2 > scalar). */
Isa best_isa();
/**
 * Resolve a requested path name: "auto" (or empty) -> EDU_TRAIN_CPU_ISA when set -> best_isa().
 * Throws std::invalid_argument for an unknown name and std::runtime_error for an unsupported path.
 */
Isa resolve_isa(const std::string& requested);

struct Context {
  Isa isa = Isa::Scalar;
  ThreadPool* pool = nullptr;
};

/** 64-byte aligned float buffer. */
class AlignedFloats {
 public:
  AlignedFloats() = default;
  explicit AlignedFloats(size_t n) { resize(n); }
  void resize(size_t n);
  float* data() { return ptr_.get(); }
  const float* data() const { return ptr_.get(); }
  size_t size() const { return n_; }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> ptr_;
  size_t n_ = 0;
};

/**
 * A linear layer's weight W [n, k] re-packed once for the GEMM micro-kernel of one ISA:
 * K is cut into blocks of kc; inside a block, N is cut into panels of nr columns, each stored
 * k-major ([kcLen][nr], zero padded past n) so the micro-kernel streams contiguous memory.
 */
struct PackedMatrix {
  Isa isa = Isa::Scalar;
  int n = 0, k = 0;
  int nr = 0, kc = 0;
  int panels = 0;  // ceil(n / nr)
  AlignedFloats data;

  const float* panel(int kblock, int p) const {
    const int k0 = kblock * kc;
    const int len = (k - k0) < kc ? (k - k0) : kc;
    return data.data() + static_cast<size_t>(k0) * panels * nr + static_cast<size_t>(p) * len * nr;
  }
  size_t bytes() const { return data.size() * sizeof(float); }
};

/** Pack W [n, k] (row-major, y = x W^T) for `isa`'s micro-kernel. */
PackedMatrix pack_weight(Isa isa, const float* w, int n, int k);

/**
 * C[m, n] = op(A) · W^T (+ bias[n]) then the epilogue; op(A) = A [m, k] (row stride lda), or with
 * transA, A is stored [k, m] (row stride lda). C has row stride ldc. W must be packed for ctx.isa.
 */
void gemm(const Context& ctx, const float* a, long lda, bool transA, const PackedMatrix& w,
          const float* bias, float* c, long ldc, int m, Epilogue epilogue = Epilogue::None);

/** out[r] = LayerNorm(x[r] (+ residual[r])) * gamma + beta over `cols`; out may alias x or residual. */
void layer_norm(const Context& ctx, const float* x, const float* residual, const float* gamma,
                const float* beta, float* out, int rows, int cols, float eps);

/** y = GELU(x) (exact erf), y may alias x. */
void gelu(const Context& ctx, const float* x, float* y, size_t n);
/** y = tanh(x), y may alias x. */
void tanh_act(const Context& ctx, const float* x, float* y, size_t n);
/** x[r, :] += bias for each of `rows` rows of `cols`. */
void bias_add(const Context& ctx, float* x, const float* bias, int rows, int cols);

/**
 * Row softmax of scores [rows, cols] where keys with keyMask[col] == 0 get exactly 0; a row with no
 * visible key is uniform over all cols (Hugging Face's finfo.min additive-mask behaviour).
 */
void masked_softmax(const Context& ctx, const float* scores, const int32_t* keyMask, float* out,
                    int rows, int cols);

/** softmax(q k^T / sqrt(headDim) + mask) v per (batch, head); see edu_kernels.h. */
void attention(const Context& ctx, const AttentionShape& shape, const AttentionTensors& t);

/**
 * Position ids [batch, seqLen]: Absolute -> 0..L-1; Roberta -> pad + cumsum(id != pad) for real
 * tokens, pad for pad tokens (transformers' create_position_ids_from_input_ids).
 */
void position_ids(PositionStyle style, const int32_t* ids, int batch, int seqLen, int padTokenId,
                  int32_t* out);

/** out[t] = word[ids[t]] + tokenType[types[t]] + position[pos[t]] (types may be null = 0). */
void embeddings(const Context& ctx, const EmbeddingTables& tables, const int32_t* ids,
                const int32_t* types, const int32_t* pos, float* out, int tokens);

/** out[b] = sum_t mask[b, t] h[b, t] / max(sum_t mask[b, t], 1e-9). */
void mean_pool(const float* h, const int32_t* mask, int batch, int seqLen, int hidden, float* out);
/** out[b] = h[b, 0]. */
void cls_pool(const float* h, int batch, int seqLen, int hidden, float* out);

}  // namespace cpu
}  // namespace edu
