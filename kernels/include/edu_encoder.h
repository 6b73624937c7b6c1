// A BERT-family encoder (BERT, RoBERTa/XLM-R, ELECTRA) on the CPU kernels, holding packed weights.
// Mirrors NativeEncoderConfig / NativeForwardRequest of src/native/addon-types.ts.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "edu_bf16.h"
#include "edu_cpu.h"

namespace edu {

enum class HeadKind : int { None = 0, Bert = 1, Roberta = 2, Electra = 3 };

struct EncoderConfig {
  int vocabSize = 0;
  int hiddenSize = 0;
  int embeddingSize = 0;
  int numLayers = 0;
  int numHeads = 0;
  int intermediateSize = 0;
  int maxPositions = 0;
  int typeVocabSize = 0;
  double layerNormEps = 1e-12;
  int padTokenId = 0;
  PositionStyle positionStyle = PositionStyle::Absolute;
  bool hasPooler = false;
  HeadKind head = HeadKind::None;
  int numLabels = 0;
};

/** A borrowed float tensor (the encoder copies what it keeps). */
struct WeightView {
  const float* data = nullptr;
  size_t size = 0;
};
using WeightMap = std::unordered_map<std::string, WeightView>;

struct ForwardRequest {
  const int32_t* inputIds = nullptr;
  size_t inputIdsLength = 0;
  const int32_t* attentionMask = nullptr;
  size_t attentionMaskLength = 0;
  const int32_t* tokenTypeIds = nullptr;  // may be null = all zeros
  size_t tokenTypeIdsLength = 0;
  int batch = 0;
  int seqLen = 0;
  bool lastHiddenState = false;
  bool meanPooled = false;
  bool cls = false;
  bool pooler = false;
  bool logits = false;
};

struct ForwardResult {
  std::vector<float> lastHiddenState, meanPooled, cls, poolerOutput, logits;
  bool hasLastHiddenState = false, hasMeanPooled = false, hasCls = false, hasPooler = false,
       hasLogits = false;
};

/** Throws std::invalid_argument when the config is inconsistent. */
void validate_config(const EncoderConfig& c);

/**
 * Arithmetic of the encoder's linear layers. Fp32 (default): the fp32 GEMM of `isa`. Bf16: every linear
 * layer (Q/K/V, attention output, FFN, ELECTRA projection, pooler, classifier) runs gemm_bf16 on the
 * `bf16Isa` path with its weight rounded to bf16 once at construction (see edu_bf16.h); embeddings,
 * LayerNorm, attention scores / softmax / context, GELU, residuals and pooling stay fp32 on `isa`, which
 * must be bf16_helper_isa(bf16Isa).
 */
struct EncoderNumerics {
  Dtype dtype = Dtype::Fp32;
  cpu::Bf16Isa bf16Isa = cpu::Bf16Isa::Scalar;
};

class Encoder {
 public:
  /** Validates and copies (re-packs) the weights. threads <= 0 = logical CPUs. Throws on bad input. */
  Encoder(const EncoderConfig& config, const WeightMap& weights, Isa isa, int threads);
  /** The same with a choice of arithmetic (EncoderNumerics). */
  Encoder(const EncoderConfig& config, const WeightMap& weights, Isa isa, int threads, const EncoderNumerics& numerics);
  ~Encoder();

  /** Thread-safe: calls are serialised on an internal mutex. Throws std::invalid_argument on bad input. */
  ForwardResult forward(const ForwardRequest& request);

  const EncoderConfig& config() const { return cfg_; }
  Isa isa() const { return isa_; }
  Dtype dtype() const { return num_.dtype; }
  cpu::Bf16Isa bf16_isa() const { return num_.bf16Isa; }
  /** The GEMM code path: isa_name(isa()) for fp32, bf16_isa_name(bf16_isa()) for bf16. */
  const char* gemm_path() const;
  int threads() const { return pool_->size(); }
  size_t weight_bytes() const { return weightBytes_; }

 private:
  struct Linear {
    cpu::PackedMatrix w;   // fp32 encoders
    cpu::PackedBf16 wb;    // bf16 encoders
    std::vector<float> b;
  };
  struct Layer {
    Linear qkv, attnOut, inter, out;
    std::vector<float> ln1g, ln1b, ln2g, ln2b;
  };

  void validate_request(const ForwardRequest& r, std::vector<int32_t>& positions) const;
  void linear(const cpu::Context& ctx, const float* x, long ldx, const Linear& l, float* y, int rows,
              Epilogue ep) const;

  EncoderConfig cfg_;
  Isa isa_;
  EncoderNumerics num_;
  mutable cpu::Bf16Workspace bf16Ws_;  // packed A of the bf16 GEMMs (forward() is serialised)
  std::unique_ptr<ThreadPool> pool_;
  std::mutex mu_;
  size_t weightBytes_ = 0;

  std::vector<float> wordEmb_, posEmb_, typeEmb_, embLnG_, embLnB_;
  bool hasProject_ = false;
  Linear project_;
  std::vector<Layer> layers_;
  Linear pooler_;
  Linear clsDense_, clsOut_;  // bert head uses clsOut_ only
};

}  // namespace edu
