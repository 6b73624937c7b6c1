// A BERT-family encoder (BERT, RoBERTa/XLM-R, ELECTRA) on the CPU kernels, holding packed weights.
// Mirrors NativeEncoderConfig / NativeForwardRequest of src/native/addon-types.ts.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

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

class Encoder {
 public:
  /** Validates and copies (re-packs) the weights. threads <= 0 = logical CPUs. Throws on bad input. */
  Encoder(const EncoderConfig& config, const WeightMap& weights, Isa isa, int threads);
  ~Encoder();

  /** Thread-safe: calls are serialised on an internal mutex. Throws std::invalid_argument on bad input. */
  ForwardResult forward(const ForwardRequest& request);

  const EncoderConfig& config() const { return cfg_; }
  Isa isa() const { return isa_; }
  int threads() const { return pool_->size(); }
  size_t weight_bytes() const { return weightBytes_; }

 private:
  struct Linear {
    cpu::PackedMatrix w;
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
