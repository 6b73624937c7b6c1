// Trainable classifier / regression head on frozen embeddings, with its own AdamW state.
//
//   x [B, H] --(optional: hidden = tanh(x Wh^T + bh), the BERT pooler)--> dropout(p) --> z = . W^T + b  [B, C]
//   loss: class-weighted cross-entropy (reduction mean over the summed weights, like torch) or MSE (C = 1).
//
// Everything here is plain C++ (no N-API); native/head_binding.cpp is the only caller in the addon.
// Storage is float32 like PyTorch; losses, norms and the AdamW scalars are computed in double.
// Determinism: results do not depend on the thread count (fixed row chunks reduced in a fixed order,
// GEMM columns owned by one thread each, dropout masks from a counter-based RNG keyed by (seed, step, row)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace edu {
namespace head {

enum class Loss { CrossEntropy, Mse };

struct Config {
  int64_t in_features = 0;
  bool hidden = false;              // dense H->H + tanh before dropout (the BERT pooler)
  int64_t num_outputs = 0;          // classes (CE) or 1 (MSE)
  Loss loss = Loss::CrossEntropy;
  double dropout = 0.0;             // probability of zeroing; inverted scaling 1/(1-p); off in eval
  uint64_t seed = 0;                // dropout masks
  std::vector<float> class_weights; // CE only; empty = all ones
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  double clip_grad_norm = 0.0;      // <= 0: no clipping
  int threads = 0;                  // 0: all hardware threads
};

// PyTorch layouts: weight [out, in] row-major. hidden_* are empty when Config::hidden is false.
struct Params {
  std::vector<float> weight, bias, hidden_weight, hidden_bias;
};

// Parameters plus AdamW moments and the step counter t (which also keys the dropout masks).
struct State {
  Params params, exp_avg, exp_avg_sq;
  int64_t step = 0;
};

struct StepStats {
  double loss = 0;       // training-mode loss (dropout on) at the parameters before the update
  double grad_norm = 0;  // total L2 norm of all gradients before clipping (what clip_grad_norm_ returns)
};

struct EpochStats {
  double mean_loss = 0;  // mean over steps of the per-step loss
  int64_t steps = 0;
  double last_grad_norm = 0;
};

// Training rows are referenced, never copied: features [n_rows, in_features]; targets are class ids
// (CE) or float scores (MSE) indexed by row.
struct Batch {
  const float* features = nullptr;
  int64_t n_rows = 0;
  const int32_t* classes = nullptr;  // CE
  const float* values = nullptr;     // MSE
};

class Head {
 public:
  Head(Config cfg, const Params& init);
  ~Head();
  Head(const Head&) = delete;
  Head& operator=(const Head&) = delete;

  const Config& config() const { return cfg_; }

  // One AdamW step on rows idx[0..batch) of data (idx == nullptr: rows 0..batch-1).
  // If grads_out is given it receives the gradients used for the update (after clipping).
  StepStats step(const Batch& data, const int32_t* idx, int64_t batch, double lr, Params* grads_out = nullptr);

  // ceil(n_order / batch_size) steps over order (sample indices, may repeat); lrs has one entry per step.
  EpochStats train_epoch(const Batch& data, const int32_t* order, int64_t n_order, int64_t batch_size,
                         const double* lrs, int64_t n_lrs);

  // Eval mode (no dropout): out [n, num_outputs].
  void predict(const float* x, int64_t n, float* out);

  // Eval-mode loss over all rows of data (no update).
  double eval_loss(const Batch& data);

  State get_state() const;
  void set_state(const State& s);  // sizes are checked

  size_t param_count() const;
  int64_t step_count() const;  // AdamW t

 private:
  struct Impl;
  Config cfg_;
  std::unique_ptr<Impl> impl_;
};

// Validates sizes / ranges; throws std::invalid_argument with a message that says what to fix.
void validate_config(const Config& cfg);

namespace detail {
// Kernel table: scalar reference in head.cpp, AVX2+FMA versions in head_avx2.cpp, chosen at run time.
struct Kernels {
  const char* name;
  // out[c] = bias[c] + dot(x, w[c, :]) for c < C (bias may be null).
  void (*dot_rows)(const float* x, const float* w, const float* bias, int64_t c, int64_t h, float* out);
  // acc[c, :] += g[c] * x for c < C.
  void (*outer_acc)(const float* g, const float* x, int64_t c, int64_t h, float* acc);
  // y += a * x.
  void (*axpy)(float a, const float* x, int64_t n, float* y);
  // sum of squares in double.
  double (*sumsq)(const float* x, int64_t n);
  // y *= a.
  void (*scale)(float a, float* y, int64_t n);
  // x = tanh(x + bias) (the AVX2 version is a rational approximation within 3e-7 absolute).
  void (*bias_tanh)(float* x, const float* bias, int64_t n);
  // Inverted dropout: keep[j] = draw_j >= threshold; y[j] = keep ? x[j] * scale : 0; mask[j] (optional)
  // = keep ? scale : 0. Draws come from 8 xorshift128 lanes (state: 4 words x 8 lanes, updated), element j
  // from lane j % 8, so the scalar and AVX2 versions give identical masks. x == y is allowed.
  void (*dropout)(const float* x, float* y, float* mask, int64_t n, uint32_t* state, uint32_t threshold, float scale);
  // AdamW on n elements (torch.optim.AdamW single-tensor math, float32 storage).
  void (*adamw)(float* p, const float* g, float* m, float* v, int64_t n, float decay, float b1, float b2,
                float step_size, float bc2_sqrt, float eps);
  // C[m, n] (+)= op(A)[m, k] * B[k, n]; op(A) = A [m, k] (lda) or, with trans_a, A is [k, m] (lda).
  // Columns [n0, n1) only, so threads can split the output. Deterministic: fixed k order.
  void (*gemm)(bool trans_a, int64_t m, int64_t n0, int64_t n1, int64_t k, const float* a, int64_t lda,
               const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate);
};
const Kernels& scalar_kernels();
const Kernels* avx2_kernels();  // nullptr when not compiled in
const Kernels& best_kernels();  // honours EDU_TRAIN_CPU_ISA=scalar
}  // namespace detail

}  // namespace head
}  // namespace edu
