// Trainable head: forward, loss, backward, gradient clipping and AdamW (see kernels/include/head.h).
//
// Layout of the work per step (B rows):
//  * linear head: rows are split into fixed chunks of kChunk; each chunk runs forward + loss + backward
//    row by row while the row is in L1 and accumulates into its own gradient buffer; the chunk buffers
//    are then summed in chunk order. No [B, H] temporaries, one pass over the features.
//  * hidden (pooler) head: X [B, H] is gathered, A = X Wh^T is a packed GEMM (columns split over threads),
//    the per-row part (tanh, dropout, classifier, loss, backward to dA) runs in chunks as above, and
//    dWh = dA^T X is a second GEMM. Wh is stored transposed ([in, out]) so both GEMMs read row-major
//    operands; AdamW is elementwise, so the layout only matters in get_state/set_state.
#include "head.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

namespace edu {
namespace head {

// ------------------------------------------------------------------------------------------------
// Scalar reference kernels (also the fallback without AVX2).
namespace detail {
namespace {

void s_dot_rows(const float* x, const float* w, const float* bias, int64_t c, int64_t h, float* out) {
  for (int64_t r = 0; r < c; ++r) {
    float s = 0.f;
    const float* wr = w + r * h;
    for (int64_t j = 0; j < h; ++j) s += x[j] * wr[j];
    out[r] = s + (bias ? bias[r] : 0.f);
  }
}
void s_axpy(float a, const float* x, int64_t n, float* y) {
  for (int64_t j = 0; j < n; ++j) y[j] += a * x[j];
}
void s_outer_acc(const float* g, const float* x, int64_t c, int64_t h, float* acc) {
  for (int64_t r = 0; r < c; ++r) s_axpy(g[r], x, h, acc + r * h);
}
double s_sumsq(const float* x, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += double(x[j]) * x[j];
  return s;
}
void s_scale(float a, float* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] *= a;
}
void s_bias_tanh(float* x, const float* bias, int64_t n) {
  for (int64_t j = 0; j < n; ++j) x[j] = std::tanh(x[j] + bias[j]);
}
void s_dropout(const float* x, float* y, float* mask, int64_t n, uint32_t* st, uint32_t threshold, float scale) {
  for (int64_t j0 = 0; j0 < n; j0 += 8) {
    for (int64_t l = 0; l < 8; ++l) {
      // xorshift128 (Marsaglia) on lane l
      uint32_t t = st[l] ^ (st[l] << 11);
      st[l] = st[8 + l];
      st[8 + l] = st[16 + l];
      st[16 + l] = st[24 + l];
      st[24 + l] = st[24 + l] ^ (st[24 + l] >> 19) ^ (t ^ (t >> 8));
      const int64_t j = j0 + l;
      if (j >= n) continue;
      const float m = st[24 + l] >= threshold ? scale : 0.f;
      y[j] = x[j] * m;
      if (mask) mask[j] = m;
    }
  }
}
void s_adamw(float* p, const float* g, float* m, float* v, int64_t n, float decay, float b1, float b2,
             float step_size, float bc2_sqrt, float eps) {
  for (int64_t j = 0; j < n; ++j) {
    const float gj = g[j];
    p[j] *= decay;
    m[j] = b1 * m[j] + (1.f - b1) * gj;
    v[j] = b2 * v[j] + (1.f - b2) * gj * gj;
    const float den = std::sqrt(v[j]) / bc2_sqrt + eps;
    p[j] -= step_size * (m[j] / den);
  }
}
void s_gemm(bool trans_a, int64_t m, int64_t n0, int64_t n1, int64_t k, const float* a, int64_t lda,
            const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    if (!accumulate)
      for (int64_t j = n0; j < n1; ++j) ci[j] = 0.f;
    for (int64_t p = 0; p < k; ++p) {
      const float av = trans_a ? a[p * lda + i] : a[i * lda + p];
      const float* bp = b + p * ldb;
      for (int64_t j = n0; j < n1; ++j) ci[j] += av * bp[j];
    }
  }
}

const Kernels kScalar = {"scalar", s_dot_rows, s_outer_acc, s_axpy, s_sumsq, s_scale, s_bias_tanh, s_dropout, s_adamw, s_gemm};
}  // namespace

const Kernels& scalar_kernels() { return kScalar; }

const Kernels& best_kernels() {
  static const Kernels* chosen = [] {
    const char* force = std::getenv("EDU_TRAIN_CPU_ISA");
    if (force && std::string(force) == "scalar") return &kScalar;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (avx2_kernels() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return avx2_kernels();
#endif
    return &kScalar;
  }();
  return *chosen;
}
}  // namespace detail

// ------------------------------------------------------------------------------------------------
namespace {

// A small persistent pool: run(n, fn) calls fn(0..n-1) on the workers and the caller, returns when done.
class Pool {
 public:
  explicit Pool(int threads) {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return int(workers_.size()) + 1; }
  void run(int64_t n, const std::function<void(int64_t)>& fn) {
    if (n <= 0) return;
    if (workers_.empty() || n == 1) {
      for (int64_t i = 0; i < n; ++i) fn(i);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      n_ = n;
      next_.store(0);
      active_ = int(workers_.size());
      ++gen_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [this] { return active_ == 0; });
    fn_ = nullptr;
  }

 private:
  void work() {
    for (;;) {
      int64_t i = next_.fetch_add(1);
      if (i >= n_) break;
      (*fn_)(i);
    }
  }
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || gen_ != seen; });
        if (stop_) return;
        seen = gen_;
      }
      work();
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (--active_ == 0) done_cv_.notify_all();
      }
    }
  }
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
  int active_ = 0;
  uint64_t gen_ = 0;
  bool stop_ = false;
};

// splitmix64: a counter-based source for dropout masks, keyed by (seed, step, row) so a mask does not
// depend on how rows are split over threads.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct RowRng {
  uint64_t state;
  RowRng(uint64_t seed, int64_t step, int64_t row)
      : state(mix64(mix64(seed ^ 0x6a09e667f3bcc909ULL) + mix64(uint64_t(step) * 0x9e3779b97f4a7c15ULL) +
                    uint64_t(row) * 0xd1b54a32d192ed03ULL)) {}
  uint64_t next() { return mix64(state += 0x9e3779b97f4a7c15ULL); }
};

// Seeds the 8 xorshift128 lanes of one row's dropout stream (a state word of 0 in every slot of a lane
// would stick at 0, so such a lane is nudged).
void dropout_state(uint64_t seed, int64_t step, int64_t row, uint32_t* st) {
  RowRng rng(seed, step, row);
  for (int i = 0; i < 32; i += 2) {
    const uint64_t r = rng.next();
    st[i] = uint32_t(r);
    st[i + 1] = uint32_t(r >> 32);
  }
  for (int l = 0; l < 8; ++l)
    if ((st[l] | st[8 + l] | st[16 + l] | st[24 + l]) == 0) st[l] = 0x9e3779b9u;
}

constexpr int64_t kChunk = 16;  // rows per gradient chunk (fixed: results do not depend on threads)

std::string shape_msg(const char* what, size_t got, size_t want) {
  std::ostringstream os;
  os << what << " has " << got << " elements, expected " << want;
  return os.str();
}

}  // namespace

void validate_config(const Config& c) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("Head: " + m); };
  if (c.in_features <= 0) bad("inFeatures must be a positive integer");
  if (c.num_outputs <= 0) bad("numOutputs must be a positive integer");
  if (c.loss == Loss::Mse && c.num_outputs != 1) bad("loss 'mse' needs numOutputs = 1");
  if (c.loss == Loss::CrossEntropy && c.num_outputs < 2) bad("loss 'ce' needs numOutputs >= 2");
  if (!(c.dropout >= 0.0 && c.dropout < 1.0)) bad("dropout must be in [0, 1)");
  if (!c.class_weights.empty()) {
    if (c.loss != Loss::CrossEntropy) bad("classWeights only apply to loss 'ce'");
    if (int64_t(c.class_weights.size()) != c.num_outputs)
      bad(shape_msg("classWeights", c.class_weights.size(), size_t(c.num_outputs)));
    for (float w : c.class_weights)
      if (!(std::isfinite(w) && w > 0)) bad("classWeights must be positive finite numbers");
  }
  if (!(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1)) bad("betas must be in [0, 1)");
  if (!(c.eps > 0 && std::isfinite(c.eps))) bad("eps must be positive");
  if (!(c.weight_decay >= 0 && std::isfinite(c.weight_decay))) bad("weightDecay must be >= 0");
  if (!(std::isfinite(c.clip_grad_norm) && c.clip_grad_norm >= 0)) bad("clipGradNorm must be >= 0 (0 = off)");
  if (c.threads < 0) bad("threads must be >= 0");
}

struct Head::Impl {
  const detail::Kernels& k = detail::best_kernels();
  Config cfg;
  int64_t H, C;
  Params p, g, m, v;  // hidden_weight stored transposed: [in, out]
  int64_t t = 0;
  Pool pool;
  uint32_t drop_threshold = 0;
  float keep_scale = 1.f;
  // scratch
  std::vector<float> chunk_gw, chunk_gb;
  std::vector<double> chunk_loss;
  std::vector<float> X, A, DA, MASK;

  static int resolve_threads(int t) {
    if (t > 0) return t;
    unsigned hc = std::thread::hardware_concurrency();
    return hc ? int(hc) : 1;
  }

  Impl(const Config& c) : cfg(c), H(c.in_features), C(c.num_outputs), pool(resolve_threads(c.threads)) {
    if (cfg.dropout > 0) {
      drop_threshold = uint32_t(std::min(4294967295.0, std::round(cfg.dropout * 4294967296.0)));
      keep_scale = float(1.0 / (1.0 - cfg.dropout));
    }
    if (cfg.class_weights.empty() && cfg.loss == Loss::CrossEntropy) cfg.class_weights.assign(size_t(C), 1.f);
  }

  static void zero_like(Params& dst, const Params& src) {
    dst.weight.assign(src.weight.size(), 0.f);
    dst.bias.assign(src.bias.size(), 0.f);
    dst.hidden_weight.assign(src.hidden_weight.size(), 0.f);
    dst.hidden_bias.assign(src.hidden_bias.size(), 0.f);
  }

  // Checks a torch-layout Params and stores it (hidden weight transposed).
  void load_params(const Params& in, Params& out, const char* what) const {
    auto check = [&](const std::vector<float>& a, size_t want, const char* name) {
      if (a.size() != want)
        throw std::invalid_argument(std::string("Head: ") + what + "." + name + ": " + shape_msg(name, a.size(), want));
      for (float x : a)
        if (!std::isfinite(x)) throw std::invalid_argument(std::string("Head: ") + what + "." + name + " is not finite");
    };
    check(in.weight, size_t(C * H), "weight");
    check(in.bias, size_t(C), "bias");
    check(in.hidden_weight, cfg.hidden ? size_t(H * H) : 0, "hiddenWeight");
    check(in.hidden_bias, cfg.hidden ? size_t(H) : 0, "hiddenBias");
    out.weight = in.weight;
    out.bias = in.bias;
    out.hidden_bias = in.hidden_bias;
    out.hidden_weight = transpose(in.hidden_weight);
  }
  std::vector<float> transpose(const std::vector<float>& w) const {
    if (w.empty()) return {};
    std::vector<float> out(w.size());
    for (int64_t i = 0; i < H; ++i)
      for (int64_t j = 0; j < H; ++j) out[size_t(j * H + i)] = w[size_t(i * H + j)];
    return out;
  }
  Params to_torch(const Params& s) const {
    Params out = s;
    out.hidden_weight = transpose(s.hidden_weight);
    return out;
  }

  void check_rows(const Batch& d, const int32_t* idx, int64_t n) const {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = idx ? idx[i] : i;
      if (r < 0 || r >= d.n_rows) {
        std::ostringstream os;
        os << "Head: sample index " << r << " at position " << i << " is outside [0, " << d.n_rows << ")";
        throw std::invalid_argument(os.str());
      }
      if (cfg.loss == Loss::CrossEntropy) {
        const int32_t y = d.classes[r];
        if (y < 0 || y >= C) {
          std::ostringstream os;
          os << "Head: target " << y << " of row " << r << " is outside [0, " << C << ")";
          throw std::invalid_argument(os.str());
        }
      } else if (!std::isfinite(d.values[r])) {
        std::ostringstream os;
        os << "Head: target of row " << r << " is not finite";
        throw std::invalid_argument(os.str());
      }
    }
  }

  // Per-row loss and dL/dz (scaled by `norm`, the batch normaliser). Returns the unnormalised row loss.
  double row_loss_grad(const float* z, const Batch& d, int64_t r, double norm, float* dz) const {
    if (cfg.loss == Loss::Mse) {
      const double diff = double(z[0]) - double(d.values[r]);
      if (dz) dz[0] = float(2.0 * diff * norm);
      return diff * diff;
    }
    const int32_t y = d.classes[r];
    double mx = z[0];
    for (int64_t c = 1; c < C; ++c) mx = std::max(mx, double(z[c]));
    double se = 0;
    for (int64_t c = 0; c < C; ++c) se += std::exp(double(z[c]) - mx);
    const double lse = mx + std::log(se);
    const double w = cfg.class_weights[size_t(y)];
    if (dz)
      for (int64_t c = 0; c < C; ++c) {
        const double pc = std::exp(double(z[c]) - lse);
        dz[c] = float(w * norm * (pc - (c == y ? 1.0 : 0.0)));
      }
    return w * (lse - double(z[y]));
  }

  double batch_norm(const Batch& d, const int32_t* idx, int64_t b) const {
    if (cfg.loss == Loss::Mse) return double(b);
    double s = 0;
    for (int64_t i = 0; i < b; ++i) s += cfg.class_weights[size_t(d.classes[idx ? idx[i] : i])];
    return s;
  }

  // Forward + backward for one batch into g; returns the loss. `train` switches dropout on.
  double forward_backward(const Batch& d, const int32_t* idx, int64_t b, bool train, bool want_grad) {
    const double denom = batch_norm(d, idx, b);
    const double norm = 1.0 / denom;
    const int64_t nch = (b + kChunk - 1) / kChunk;
    const bool drop = train && cfg.dropout > 0;
    chunk_loss.assign(size_t(nch), 0.0);
    if (want_grad) {
      chunk_gw.assign(size_t(nch * C * H), 0.f);
      chunk_gb.assign(size_t(nch * C), 0.f);
    }
    const int64_t step_key = t + 1;  // the step this forward belongs to

    if (!cfg.hidden) {
      pool.run(nch, [&](int64_t ch) {
        std::vector<float> xb(drop ? size_t(H) : 0), z(static_cast<size_t>(C)), dz(static_cast<size_t>(C));
        uint32_t st[32];
        double lsum = 0;
        float* gw = want_grad ? chunk_gw.data() + ch * C * H : nullptr;
        float* gb = want_grad ? chunk_gb.data() + ch * C : nullptr;
        for (int64_t i = ch * kChunk, e = std::min(b, i + kChunk); i < e; ++i) {
          const int64_t r = idx ? idx[i] : i;
          const float* x = d.features + r * H;
          if (drop) {
            dropout_state(cfg.seed, step_key, i, st);
            k.dropout(x, xb.data(), nullptr, H, st, drop_threshold, keep_scale);
            x = xb.data();
          }
          k.dot_rows(x, p.weight.data(), p.bias.data(), C, H, z.data());
          lsum += row_loss_grad(z.data(), d, r, norm, want_grad ? dz.data() : nullptr);
          if (want_grad) {
            k.outer_acc(dz.data(), x, C, H, gw);
            for (int64_t c = 0; c < C; ++c) gb[c] += dz[size_t(c)];
          }
        }
        chunk_loss[size_t(ch)] = lsum;
      });
    } else {
      X.resize(size_t(b * H));
      A.resize(size_t(b * H));
      if (want_grad) DA.resize(size_t(b * H));
      if (drop) MASK.resize(size_t(b * H));
      pool.run(nch, [&](int64_t ch) {
        for (int64_t i = ch * kChunk, e = std::min(b, i + kChunk); i < e; ++i)
          std::memcpy(X.data() + i * H, d.features + (idx ? idx[i] : i) * H, sizeof(float) * size_t(H));
      });
      gemm_cols(false, b, H, H, X.data(), H, p.hidden_weight.data(), H, A.data(), H, false);
      pool.run(nch, [&](int64_t ch) {
        std::vector<float> z(static_cast<size_t>(C)), dz(static_cast<size_t>(C)), dd(static_cast<size_t>(H));
        double lsum = 0;
        float* gw = want_grad ? chunk_gw.data() + ch * C * H : nullptr;
        float* gb = want_grad ? chunk_gb.data() + ch * C : nullptr;
        for (int64_t i = ch * kChunk, e = std::min(b, i + kChunk); i < e; ++i) {
          const int64_t r = idx ? idx[i] : i;
          float* a = A.data() + i * H;  // becomes h = tanh(a + bh), then the dropped-out h
          k.bias_tanh(a, p.hidden_bias.data(), H);
          float* mk = drop ? MASK.data() + i * H : nullptr;
          // keep h for the tanh derivative in DA's row until it is overwritten below
          float* hrow = want_grad ? DA.data() + i * H : nullptr;
          if (hrow) std::memcpy(hrow, a, sizeof(float) * size_t(H));
          if (drop) {
            uint32_t st[32];
            dropout_state(cfg.seed, step_key, i, st);
            k.dropout(a, a, mk, H, st, drop_threshold, keep_scale);
          }
          k.dot_rows(a, p.weight.data(), p.bias.data(), C, H, z.data());
          lsum += row_loss_grad(z.data(), d, r, norm, want_grad ? dz.data() : nullptr);
          if (!want_grad) continue;
          k.outer_acc(dz.data(), a, C, H, gw);
          for (int64_t c = 0; c < C; ++c) gb[c] += dz[size_t(c)];
          std::fill(dd.begin(), dd.end(), 0.f);
          for (int64_t c = 0; c < C; ++c) k.axpy(dz[size_t(c)], p.weight.data() + c * H, H, dd.data());
          for (int64_t j = 0; j < H; ++j) {
            const float hj = hrow[j];
            const float dh = drop ? dd[size_t(j)] * mk[j] : dd[size_t(j)];
            hrow[j] = dh * (1.f - hj * hj);  // dA
          }
        }
        chunk_loss[size_t(ch)] = lsum;
      });
      if (want_grad) {
        // dWh^T [in, out] = X^T [in, B] . dA [B, out]
        gemm_cols(true, H, H, b, X.data(), H, DA.data(), H, g.hidden_weight.data(), H, false);
        // dbh = column sums of dA, rows in order
        std::fill(g.hidden_bias.begin(), g.hidden_bias.end(), 0.f);
        for (int64_t i = 0; i < b; ++i) k.axpy(1.f, DA.data() + i * H, H, g.hidden_bias.data());
      }
    }

    double loss = 0;
    for (double l : chunk_loss) loss += l;
    if (want_grad) {
      std::fill(g.weight.begin(), g.weight.end(), 0.f);
      std::fill(g.bias.begin(), g.bias.end(), 0.f);
      for (int64_t ch = 0; ch < nch; ++ch) {
        k.axpy(1.f, chunk_gw.data() + ch * C * H, C * H, g.weight.data());
        k.axpy(1.f, chunk_gb.data() + ch * C, C, g.bias.data());
      }
    }
    return loss * norm;
  }

  // C[m, 0:n] = op(A)[m, kk] . B[kk, n] with output columns split over the pool in 16-aligned ranges.
  void gemm_cols(bool trans_a, int64_t m, int64_t n, int64_t kk, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float* c, int64_t ldc, bool acc) {
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(pool.size(), (n + 15) / 16));
    const int64_t per = ((n + parts - 1) / parts + 15) / 16 * 16;
    pool.run(parts, [&](int64_t q) {
      const int64_t n0 = q * per, n1 = std::min(n, n0 + per);
      if (n0 < n1) k.gemm(trans_a, m, n0, n1, kk, a, lda, b, ldb, c, ldc, acc);
    });
  }

  double grad_norm() const {
    double s = k.sumsq(g.weight.data(), int64_t(g.weight.size())) + k.sumsq(g.bias.data(), int64_t(g.bias.size())) +
               k.sumsq(g.hidden_weight.data(), int64_t(g.hidden_weight.size())) +
               k.sumsq(g.hidden_bias.data(), int64_t(g.hidden_bias.size()));
    return std::sqrt(s);
  }

  void scale_grads(float coef) {
    k.scale(coef, g.weight.data(), int64_t(g.weight.size()));
    k.scale(coef, g.bias.data(), int64_t(g.bias.size()));
    k.scale(coef, g.hidden_weight.data(), int64_t(g.hidden_weight.size()));
    k.scale(coef, g.hidden_bias.data(), int64_t(g.hidden_bias.size()));
  }

  void adamw(double lr) {
    ++t;
    const double bc1 = 1.0 - std::pow(cfg.beta1, double(t));
    const double bc2 = 1.0 - std::pow(cfg.beta2, double(t));
    const float decay = float(1.0 - lr * cfg.weight_decay), step_size = float(lr / bc1),
                bc2_sqrt = float(std::sqrt(bc2));
    auto upd = [&](std::vector<float>& pp, const std::vector<float>& gg, std::vector<float>& mm,
                   std::vector<float>& vv) {
      const int64_t n = int64_t(pp.size());
      constexpr int64_t blk = 65536;
      pool.run((n + blk - 1) / blk, [&](int64_t q) {
        const int64_t j0 = q * blk, len = std::min(blk, n - j0);
        k.adamw(pp.data() + j0, gg.data() + j0, mm.data() + j0, vv.data() + j0, len, decay, float(cfg.beta1),
                float(cfg.beta2), step_size, bc2_sqrt, float(cfg.eps));
      });
    };
    upd(p.weight, g.weight, m.weight, v.weight);
    upd(p.bias, g.bias, m.bias, v.bias);
    upd(p.hidden_weight, g.hidden_weight, m.hidden_weight, v.hidden_weight);
    upd(p.hidden_bias, g.hidden_bias, m.hidden_bias, v.hidden_bias);
  }

  StepStats step(const Batch& d, const int32_t* idx, int64_t b, double lr) {
    StepStats st;
    st.loss = forward_backward(d, idx, b, true, true);
    st.grad_norm = grad_norm();
    if (cfg.clip_grad_norm > 0) {
      // torch.nn.utils.clip_grad_norm_: coef = max_norm / (total + 1e-6), clamped at 1.
      const double coef = std::min(1.0, cfg.clip_grad_norm / (st.grad_norm + 1e-6));
      if (coef < 1.0) scale_grads(float(coef));
    }
    adamw(lr);
    return st;
  }
};

Head::Head(Config cfg, const Params& init) : cfg_(std::move(cfg)) {
  validate_config(cfg_);
  impl_ = std::make_unique<Impl>(cfg_);
  impl_->load_params(init, impl_->p, "init");
  Impl::zero_like(impl_->g, impl_->p);
  Impl::zero_like(impl_->m, impl_->p);
  Impl::zero_like(impl_->v, impl_->p);
}

Head::~Head() = default;

size_t Head::param_count() const {
  const Params& p = impl_->p;
  return p.weight.size() + p.bias.size() + p.hidden_weight.size() + p.hidden_bias.size();
}

int64_t Head::step_count() const { return impl_->t; }

static void check_batch(const Batch& d, const Config& c) {
  if (!d.features) throw std::invalid_argument("Head: no features");
  if (c.loss == Loss::CrossEntropy && !d.classes) throw std::invalid_argument("Head: loss 'ce' needs Int32 class targets");
  if (c.loss == Loss::Mse && !d.values) throw std::invalid_argument("Head: loss 'mse' needs Float32 targets");
}

static void check_lr(double lr, int64_t i) {
  if (!std::isfinite(lr) || lr < 0) {
    std::ostringstream os;
    os << "Head: learning rate " << lr << " at step " << i << " must be finite and >= 0";
    throw std::invalid_argument(os.str());
  }
}

StepStats Head::step(const Batch& data, const int32_t* idx, int64_t batch, double lr, Params* grads_out) {
  check_batch(data, cfg_);
  if (batch <= 0) throw std::invalid_argument("Head: batch must be >= 1");
  check_lr(lr, 0);
  impl_->check_rows(data, idx, batch);
  StepStats st = impl_->step(data, idx, batch, lr);
  if (grads_out) *grads_out = impl_->to_torch(impl_->g);
  return st;
}

EpochStats Head::train_epoch(const Batch& data, const int32_t* order, int64_t n_order, int64_t batch_size,
                             const double* lrs, int64_t n_lrs) {
  check_batch(data, cfg_);
  if (batch_size <= 0) throw std::invalid_argument("Head: batchSize must be >= 1");
  if (n_order <= 0) throw std::invalid_argument("Head: order is empty");
  const int64_t steps = (n_order + batch_size - 1) / batch_size;
  if (n_lrs != steps) {
    std::ostringstream os;
    os << "Head: lrs has " << n_lrs << " entries, expected one per step: ceil(" << n_order << " / " << batch_size
       << ") = " << steps;
    throw std::invalid_argument(os.str());
  }
  for (int64_t i = 0; i < steps; ++i) check_lr(lrs[i], i);
  impl_->check_rows(data, order, n_order);
  EpochStats es;
  double sum = 0;
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t off = s * batch_size, b = std::min(batch_size, n_order - off);
    StepStats st = impl_->step(data, order + off, b, lrs[s]);
    sum += st.loss;
    es.last_grad_norm = st.grad_norm;
  }
  es.steps = steps;
  es.mean_loss = sum / double(steps);
  return es;
}

void Head::predict(const float* x, int64_t n, float* out) {
  if (n < 0) throw std::invalid_argument("Head: n must be >= 0");
  Impl& I = *impl_;
  const int64_t H = I.H, C = I.C;
  constexpr int64_t blk = 256;
  for (int64_t r0 = 0; r0 < n; r0 += blk) {
    const int64_t b = std::min(blk, n - r0);
    const float* xs = x + r0 * H;
    const float* rows = xs;
    if (cfg_.hidden) {
      I.A.resize(size_t(b * H));
      I.gemm_cols(false, b, H, H, xs, H, I.p.hidden_weight.data(), H, I.A.data(), H, false);
      rows = I.A.data();
    }
    const int64_t nch = (b + kChunk - 1) / kChunk;
    I.pool.run(nch, [&](int64_t ch) {
      for (int64_t i = ch * kChunk, e = std::min(b, i + kChunk); i < e; ++i) {
        const float* xr = rows + i * H;
        if (cfg_.hidden) {
          float* a = I.A.data() + i * H;
          I.k.bias_tanh(a, I.p.hidden_bias.data(), H);
        }
        I.k.dot_rows(xr, I.p.weight.data(), I.p.bias.data(), C, H, out + (r0 + i) * C);
      }
    });
  }
}

double Head::eval_loss(const Batch& data) {
  check_batch(data, cfg_);
  if (data.n_rows <= 0) throw std::invalid_argument("Head: no rows");
  impl_->check_rows(data, nullptr, data.n_rows);
  return impl_->forward_backward(data, nullptr, data.n_rows, false, false);
}

State Head::get_state() const {
  State s;
  s.params = impl_->to_torch(impl_->p);
  s.exp_avg = impl_->to_torch(impl_->m);
  s.exp_avg_sq = impl_->to_torch(impl_->v);
  s.step = impl_->t;
  return s;
}

void Head::set_state(const State& s) {
  if (s.step < 0) throw std::invalid_argument("Head: state step must be >= 0");
  Params p, m, v;
  impl_->load_params(s.params, p, "params");
  impl_->load_params(s.exp_avg, m, "expAvg");
  impl_->load_params(s.exp_avg_sq, v, "expAvgSq");
  for (auto* vec : {&v.weight, &v.bias, &v.hidden_weight, &v.hidden_bias})
    for (float x : *vec)
      if (x < 0) throw std::invalid_argument("Head: expAvgSq must be >= 0");
  impl_->p = std::move(p);
  impl_->m = std::move(m);
  impl_->v = std::move(v);
  impl_->t = s.step;
}

}  // namespace head
}  // namespace edu
