// Full fine-tuning of a BERT-family encoder on the CPU (fp32): a training forward that keeps the
// activations the backward needs, the exact backward of every parameter (embeddings, every layer,
// pooling, heads, losses), gradient accumulation, clipping by global norm and AdamW.
//
// Numerics follow the reference PyTorch modules with dropout off (../shared/golden/backward):
// post-LN blocks, exact erf GELU, masked attention (padded keys get probability exactly 0, so no
// gradient ever flows through a padded position), RoBERTa position ids, pooler tanh, and the heads of
// transformers' *ForSequenceClassification classes.
//
// Activation memory (stored, not recomputed; recompute is the GPU-era option): per layer, with
// T = batch * seqLen tokens:
//   qkv [T, 3H], attention probabilities [batch, heads, seqLen, visible keys] (<= B*heads*L*L),
//   context [T, H], LayerNorm-1 normalised input + output [T, H] x 2 + 1/std [T],
//   GELU input and output [T, I] x 2, LayerNorm-2 normalised input + output [T, H] x 2 + 1/std [T].
// activation_bytes() gives the exact figure; callers split a batch into micro-batches to bound it.
//
// Parameters live in one float arena (with gradient, Adam m and v arenas of the same layout) under the
// canonical names of src/native/addon-types.ts; query/key/value of a layer are adjacent, so they form
// one fused [3H, H] weight for the GEMM. Linear weights are re-packed for the GEMM (W and W^T) lazily
// after each optimizer step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "edu_cpu.h"
#include "edu_encoder.h"

namespace edu {
namespace train {

/** What is trained on top of the encoder. */
enum class TrainHead : int {
  None = 0,     // no head: the pooled embedding is the output (MNRL)
  Linear = 1,   // logits = head.weight @ pool(h) + head.bias (head.weight [C, H], head.bias [C])
  Bert = 2,     // BertForSequenceClassification: classifier(tanh(pooler.dense(h[:, 0])))
  Roberta = 3,  // RobertaForSequenceClassification: classifier.out_proj(tanh(classifier.dense(h[:, 0])))
  Electra = 4,  // ElectraForSequenceClassification: classifier.out_proj(gelu(classifier.dense(h[:, 0])))
};

/** Pooling of the last hidden state for the Linear head and MNRL. */
enum class Pooling : int { Mean = 0, Cls = 1 };

enum class LossKind : int {
  CrossEntropy = 0,  // sum_i w[y_i] * nll_i / normaliser (default normaliser: sum_i w[y_i])
  Mse = 1,           // sum_i (z_i - t_i)^2 / normaliser (default: N); outputs == 1
  Mnrl = 2,          // MultipleNegativesRankingLoss: CE over scale * cos(a_i, p_j), targets j = i; mean over anchors
};

struct OptimizerConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01;
  double maxGradNorm = 1.0;      // <= 0: no clipping; clip_coef = min(1, max / (norm + 1e-6))
  bool decayBiasAndNorm = true;  // false: biases and LayerNorm weights get no weight decay (HF Trainer)
};

/**
 * Training-mode dropout (inverted: kept values scaled by 1/(1-p)), at the places transformers puts it:
 * the embeddings output, the attention probabilities, the attention-output and FFN-output dense layers
 * (before the residual add), and the classifier head (BERT: on the pooler output; RoBERTa/ELECTRA: before
 * classifier.dense and before out_proj). Masks come from a counter-based hash of (seed, accumulate call,
 * pass, layer, site, element), so they do not depend on threads and need no storage: the backward
 * regenerates them. Off in predict(). All 0 (the default) = the reference numerics.
 */
struct DropoutConfig {
  float hidden = 0.0f;       // hidden_dropout_prob
  float attention = 0.0f;    // attention_probs_dropout_prob
  float classifier = -1.0f;  // classifier_dropout; < 0: = hidden
  uint64_t seed = 0;
};

struct TrainConfig {
  /** Encoder shape. encoder.head / encoder.numLabels are ignored (the head is `head` below). */
  EncoderConfig encoder;
  TrainHead head = TrainHead::None;
  Pooling pooling = Pooling::Mean;  // Linear head and MNRL
  int numOutputs = 0;               // classes (CE) or 1 (MSE); 0 for head None
  LossKind loss = LossKind::CrossEntropy;
  std::vector<float> classWeights;  // CE only; empty = all ones
  float mnrlScale = 20.0f;
  OptimizerConfig optimizer;
  DropoutConfig dropout;
};

/** One (micro-)batch; pointers are borrowed for the duration of the call. */
struct TrainBatch {
  const int32_t* inputIds = nullptr;
  const int32_t* attentionMask = nullptr;
  const int32_t* tokenTypeIds = nullptr;  // null = all zeros
  int batch = 0, seqLen = 0;
  const int32_t* classLabels = nullptr;   // CE: [batch]
  const float* targets = nullptr;         // MSE: [batch]
  // MNRL: the positives (the anchors are the fields above). positiveBatch >= batch; positive i is the
  // target of anchor i, the others are in-batch negatives.
  const int32_t* posInputIds = nullptr;
  const int32_t* posAttentionMask = nullptr;
  const int32_t* posTokenTypeIds = nullptr;
  int posBatch = 0, posSeqLen = 0;
  /** Loss normaliser; <= 0: this micro-batch's own (summed class weights / rows / anchors). Pass the
   *  whole batch's value when it is split into micro-batches, so the summed losses equal the batch loss. */
  double normalizer = 0.0;
};

struct AccumulateResult {
  double loss = 0;              // this micro-batch's loss (with its normaliser)
  std::vector<float> outputs;   // logits [batch, C] (heads) or scores [batch, posBatch] (MNRL)
  int rows = 0, cols = 0;
};

struct StepResult {
  double gradNorm = 0;   // global L2 norm before clipping, over parameters with a gradient
  double clipCoef = 1;   // multiplier applied to every gradient
  int64_t step = 0;      // AdamW t after the step
};

struct PredictResult {
  std::vector<float> logits;  // [batch, C] when there is a head
  std::vector<float> pooled;  // [batch, H] pooled (pooling mode) when asked
  int cols = 0;
};

struct ParamInfo {
  std::string name;
  size_t offset = 0, size = 0;
  int rows = 0, cols = 0;     // cols == 0: a vector [rows]
  bool trainable = true;      // false: the loss never reaches it (no gradient, skipped by the optimizer)
  bool noDecay = false;       // bias / LayerNorm (only used when !decayBiasAndNorm)
};

/** Throws std::invalid_argument on an inconsistent config. */
void validate_train_config(const TrainConfig& c);

class FineTuneModel {
 public:
  /** Copies the weights (canonical names; head tensors included). threads <= 0: logical CPUs. */
  FineTuneModel(const TrainConfig& config, const WeightMap& weights, Isa isa, int threads);
  ~FineTuneModel();
  FineTuneModel(const FineTuneModel&) = delete;
  FineTuneModel& operator=(const FineTuneModel&) = delete;

  /** Forward + backward of one micro-batch; adds d loss / d param to the gradient buffers. Bad input
   *  throws std::invalid_argument before any gradient changes; any later failure clears the gradients. */
  AccumulateResult accumulate(const TrainBatch& batch);
  /** Clip by global norm, one AdamW step at `lr`, zero the gradients. */
  StepResult apply_step(double lr);
  /** Global L2 norm of the accumulated gradients (no side effects). */
  double grad_norm();
  void zero_grad();
  /** Eval-mode forward (nothing kept): logits and/or the pooled embedding. */
  PredictResult predict(const TrainBatch& batch, bool wantPooled);

  // GradCache (Gao et al. 2021) for head None (MNRL): the caller embeds a large batch in mini-batches
  // without activations, computes d loss / d embedding itself, then replays each mini-batch with
  // activations and backpropagates that cached gradient. Both calls draw their dropout masks from the
  // current dropout call (the counter one accumulate() advances) and `pass` (accumulate() uses pass 0
  // for the anchors and 1 for the positives), so the replay uses exactly the first pass's masks as long
  // as the mini-batch (rows, padding) is the same. Neither call advances the counter:
  // next_dropout_call() does, once the whole batch is done. Only batch inputs are read (no targets).
  /** Training-mode forward (dropout on), nothing kept: the pooled embeddings [batch, H]. */
  std::vector<float> forward_pooled(const TrainBatch& batch, int pass);
  /** The same forward keeping activations, then the backward of sum(gradPooled * pooled) (gradPooled
   *  [batch, H]); adds to the gradients. Returns this forward's pooled embeddings. Bad input throws
   *  std::invalid_argument before any gradient changes; a later failure clears the gradients. */
  std::vector<float> backward_pooled(const TrainBatch& batch, int pass, const float* gradPooled, size_t gradLen);
  /** Fresh dropout masks for what follows (ends a GradCache batch). */
  void next_dropout_call();
  uint64_t dropout_call() const { return calls_; }

  /** Bytes of activations kept by accumulate() for a batch of this shape (both passes for MNRL:
   *  call with the larger shape twice). */
  size_t activation_bytes(int batch, int seqLen) const;

  const TrainConfig& config() const { return cfg_; }
  const std::vector<ParamInfo>& params() const { return params_; }
  /** Views into the arenas (valid until destruction; do not call concurrently with training). */
  const float* param_data(size_t i) const { return w_.data() + params_[i].offset; }
  const float* grad_data(size_t i) const { return g_.data() + params_[i].offset; }
  /** Overwrites one parameter (sizes must match); packed copies are refreshed lazily. */
  void set_param(size_t i, const float* data, size_t n);
  int64_t step_count() const { return step_; }
  size_t param_count() const;  // trainable elements
  int threads() const { return pool_->size(); }
  Isa isa() const { return isa_; }
  /** Thread safety: every public method locks this (the N-API layer also serialises calls). */
  std::mutex& mutex() { return mu_; }

  struct Impl;

 private:
  AccumulateResult accumulate_locked(const TrainBatch& batch);

  TrainConfig cfg_;
  Isa isa_;
  std::unique_ptr<ThreadPool> pool_;
  std::mutex mu_;
  std::vector<ParamInfo> params_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<float> w_, g_, m_, v_;
  int64_t step_ = 0;
  uint64_t calls_ = 0;  // accumulate() calls: keys the dropout masks
  std::unique_ptr<Impl> impl_;
};

/** Standalone kernels (exposed for finite-difference tests). Row-major float32. */
namespace kernels {
/** LayerNorm forward: y = xhat * g + b, xhat = (x - mean) * rstd; returns xhat and rstd too. */
void layer_norm_fwd(const float* x, const float* g, const float* b, float* y, float* xhat, float* rstd, int rows,
                    int cols, float eps);
/** dx = LN backward (dy, xhat, rstd, g); dg += sum dy * xhat, db += sum dy (both may be null). */
void layer_norm_bwd(const float* dy, const float* xhat, const float* rstd, const float* g, float* dx, float* dg,
                    float* db, int rows, int cols);
/** du = dy * GELU'(u), exact erf GELU. */
void gelu_bwd(const float* u, const float* dy, float* du, size_t n);
/** Multi-head attention forward that keeps the probabilities, and its backward (dQKV is written). */
/** dropP > 0: dropout on the probabilities with masks keyed by dropKey (the same key in both calls). */
void attention_fwd(const cpu::Context& ctx, const float* qkv, const int32_t* mask, int batch, int seqLen, int heads,
                   int headDim, float* probs, float* out, float dropP = 0.0f, uint64_t dropKey = 0);
void attention_bwd(const cpu::Context& ctx, const float* qkv, const int32_t* mask, int batch, int seqLen, int heads,
                   int headDim, const float* probs, const float* dout, float* dqkv, float dropP = 0.0f,
                   uint64_t dropKey = 0);
/** Inverted dropout in place with the masks of (key, element index); the same call masks a gradient. */
void dropout_apply(float* x, size_t n, float p, uint64_t key);
}  // namespace kernels

}  // namespace train
}  // namespace edu
