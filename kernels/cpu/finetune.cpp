// Full fine-tuning on the CPU: training forward (activations kept), exact backward, AdamW.
// See kernels/include/edu_train_encoder.h for the contract and the activation-memory plan.
//
// GEMMs go through cpu::gemm (C = op(A) W^T with W packed). The products the backward needs are
// mapped onto it by packing the right operand from a row-major source without a transpose copy:
//   dX = dY W      -> W^T packed (pack_trans of W)
//   dW = dY^T X    -> transA on dY, X^T packed (pack_trans of X)
//   attention: S = Q K^T (pack_rows of the visible K rows), O = P V (pack_trans of V), and likewise
//   for dP, dV, dQ, dK, one (batch, head) per task on the calling thread.
// The packers write the layout documented for cpu::PackedMatrix (edu_cpu.h); it is checked against
// cpu::pack_weight once per ISA, and if it ever differs they fall back to copy + pack_weight.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "edu_train_encoder.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace edu {
namespace train {

namespace {

std::invalid_argument bad(const std::string& what) { return std::invalid_argument(what); }

// ------------------------------------------------------------------------------------------------
// Parallel helpers. Work is split into a fixed number of parts that depends only on the sizes, and
// partial sums are reduced in part order, so results do not depend on the thread count.
template <class F>
void parallel(ThreadPool* pool, int n, F&& f) {
  if (n <= 0) return;
  if (pool == nullptr || pool->size() == 1 || n == 1) {
    for (int i = 0; i < n; ++i) f(i);
    return;
  }
  auto g = [&f](int i) { f(i); };
  pool->run(n, g);
}

inline void part_range(size_t n, int parts, int i, size_t& b, size_t& e) {
  const size_t step = (n + parts - 1) / parts;
  b = std::min(n, static_cast<size_t>(i) * step);
  e = std::min(n, b + step);
}

inline int parts_for(size_t n, size_t minPer, int maxParts = 64) {
  const size_t p = n / (minPer > 0 ? minPer : 1);
  return static_cast<int>(std::max<size_t>(1, std::min<size_t>(p, maxParts)));
}

/** dst[i] += src[i]. */
void add_to(ThreadPool* pool, float* dst, const float* src, size_t n) {
  const int parts = parts_for(n, 1 << 14);
  parallel(pool, parts, [&](int p) {
    size_t b, e;
    part_range(n, parts, p, b, e);
    for (size_t i = b; i < e; ++i) dst[i] += src[i];
  });
}

/** out[j] += sum_r x[r * ld + j] (double partials). */
void colsum_add(ThreadPool* pool, const float* x, int rows, int cols, long ld, float* out) {
  const int parts = parts_for(static_cast<size_t>(rows), 64, 16);
  std::vector<double> part(static_cast<size_t>(parts) * cols, 0.0);
  parallel(pool, parts, [&](int p) {
    size_t b, e;
    part_range(static_cast<size_t>(rows), parts, p, b, e);
    double* acc = part.data() + static_cast<size_t>(p) * cols;
    for (size_t r = b; r < e; ++r) {
      const float* xr = x + r * ld;
      for (int j = 0; j < cols; ++j) acc[j] += xr[j];
    }
  });
  for (int j = 0; j < cols; ++j) {
    double s = 0;
    for (int p = 0; p < parts; ++p) s += part[static_cast<size_t>(p) * cols + j];
    out[j] += static_cast<float>(s);
  }
}

// ------------------------------------------------------------------------------------------------
// Packing for cpu::gemm.
struct PackGeom {
  int nr = 0, kc = 0;
  bool layoutOk = false;
};

void pack_with(const PackGeom& g, Isa isa, int n, int k, const float* src, long ld, const int* idx, bool trans,
               cpu::PackedMatrix& p);

// M(col, kk) for the two source forms.
inline float m_at(const float* src, long ld, const int* idx, bool trans, int col, int kk) {
  if (!trans) return src[static_cast<size_t>(idx ? idx[col] : col) * ld + kk];
  return src[static_cast<size_t>(idx ? idx[kk] : kk) * ld + col];
}

const PackGeom& geom(Isa isa) {
  static PackGeom cache[3];
  static std::once_flag once[3];
  const int i = static_cast<int>(isa);
  std::call_once(once[i], [&] {
    PackGeom g;
    const float one = 1.0f;
    cpu::PackedMatrix probe = cpu::pack_weight(isa, &one, 1, 1);
    g.nr = probe.nr;
    g.kc = probe.kc;
    // Check the documented layout against pack_weight on a shape with several k blocks and a ragged panel.
    const int n = 2 * g.nr + 3, k = 2 * g.kc + 5;
    std::vector<float> w(static_cast<size_t>(n) * k);
    for (size_t j = 0; j < w.size(); ++j) w[j] = static_cast<float>((j * 2654435761u) % 1000) - 500.0f;
    cpu::PackedMatrix ref = cpu::pack_weight(isa, w.data(), n, k);
    g.layoutOk = true;  // try the direct packer
    cpu::PackedMatrix mine;
    pack_with(g, isa, n, k, w.data(), k, nullptr, false, mine);
    bool ok = mine.data.size() == ref.data.size() && mine.panels == ref.panels && mine.nr == ref.nr && mine.kc == ref.kc;
    if (ok) ok = std::memcmp(mine.data.data(), ref.data.data(), ref.data.size() * sizeof(float)) == 0;
    g.layoutOk = ok;
    cache[i] = g;
  });
  return cache[i];
}

/**
 * Packs the logical matrix M [n, k] (y = x M^T) where M(col, kk) = src[r(col) * ld + kk] (trans false:
 * M's rows are rows of src, optionally gathered through idx) or src[r(kk) * ld + col] (trans true:
 * M = src^T, src's rows gathered through idx). p is reused when the size matches.
 */
void pack_with(const PackGeom& g, Isa isa, int n, int k, const float* src, long ld, const int* idx, bool trans,
               cpu::PackedMatrix& p) {
  if (!g.layoutOk) {
    std::vector<float> tmp(static_cast<size_t>(n) * k);
    for (int c = 0; c < n; ++c)
      for (int kk = 0; kk < k; ++kk) tmp[static_cast<size_t>(c) * k + kk] = m_at(src, ld, idx, trans, c, kk);
    p = cpu::pack_weight(isa, tmp.data(), n, k);
    return;
  }
  const int nr = g.nr, KC = g.kc;
  p.isa = isa;
  p.n = n;
  p.k = k;
  p.nr = nr;
  p.kc = KC;
  p.panels = (n + nr - 1) / nr;
  const size_t need = static_cast<size_t>(p.panels) * nr * (k > 0 ? k : 1);
  if (p.data.size() != need) p.data.resize(need);
  float* dst = p.data.data();
  for (int k0 = 0; k0 < k; k0 += KC) {
    const int kc = (k - k0) < KC ? (k - k0) : KC;
    for (int pi = 0; pi < p.panels; ++pi) {
      float* panel = dst + static_cast<size_t>(k0) * p.panels * nr + static_cast<size_t>(pi) * kc * nr;
      const int c0 = pi * nr;
      const int cn = std::min(nr, n - c0);
      if (trans) {
        for (int kk = 0; kk < kc; ++kk) {
          const float* s = src + static_cast<size_t>(idx ? idx[k0 + kk] : k0 + kk) * ld + c0;
          float* d = panel + static_cast<size_t>(kk) * nr;
          for (int j = 0; j < cn; ++j) d[j] = s[j];
          for (int j = cn; j < nr; ++j) d[j] = 0.0f;
        }
      } else {
        for (int j = 0; j < nr; ++j) {
          if (j < cn) {
            const float* s = src + static_cast<size_t>(idx ? idx[c0 + j] : c0 + j) * ld + k0;
            for (int kk = 0; kk < kc; ++kk) panel[static_cast<size_t>(kk) * nr + j] = s[kk];
          } else {
            for (int kk = 0; kk < kc; ++kk) panel[static_cast<size_t>(kk) * nr + j] = 0.0f;
          }
        }
      }
    }
  }
}

void pack_generic(Isa isa, int n, int k, const float* src, long ld, const int* idx, bool trans, cpu::PackedMatrix& p) {
  pack_with(geom(isa), isa, n, k, src, ld, idx, trans, p);
}


inline void mm(const cpu::Context& c, const float* a, long lda, bool transA, const cpu::PackedMatrix& w, const float* bias,
                 float* out, long ldc, int m) {
  cpu::gemm(c, a, lda, transA, w, bias, out, ldc, m, Epilogue::None);
}

// ------------------------------------------------------------------------------------------------
// Element-wise kernels.
inline void ln_row_fwd(const float* x, const float* g, const float* b, float* y, float* xhat, float* rstd, int cols,
                       float eps) {
  double sum = 0.0;
  for (int j = 0; j < cols; ++j) sum += x[j];
  const double mean = sum / cols;
  double sq = 0.0;
  for (int j = 0; j < cols; ++j) {
    const double v = static_cast<double>(x[j]) - mean;
    sq += v * v;
  }
  const double r = 1.0 / std::sqrt(sq / cols + static_cast<double>(eps));
  for (int j = 0; j < cols; ++j) {
    const double v = (static_cast<double>(x[j]) - mean) * r;  // x may alias xhat: read before writing
    xhat[j] = static_cast<float>(v);
    y[j] = static_cast<float>(v * g[j] + b[j]);
  }
  *rstd = static_cast<float>(r);
}

inline float gelu_grad(float u) {
  const float cdf = 0.5f * (1.0f + std::erf(u * 0.70710678118654752440f));
  const float pdf = 0.39894228040143267794f * std::exp(-0.5f * u * u);
  return cdf + u * pdf;
}

inline float gelu_f(float u) { return 0.5f * u * (1.0f + std::erf(u * 0.70710678118654752440f)); }

// ---- dropout: counter-based masks (splitmix64 finaliser of key + index) --------------------------
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct Drop {
  float p = 0.0f;
  uint64_t key = 0;
  bool on() const { return p > 0.0f; }
  uint32_t threshold() const { return static_cast<uint32_t>(std::min(4294967295.0, static_cast<double>(p) * 4294967296.0)); }
  float scale() const { return 1.0f / (1.0f - p); }
};

inline bool kept(uint64_t key, uint64_t i, uint32_t threshold) {
  return static_cast<uint32_t>(mix64(key + (i + 1) * 0x9e3779b97f4a7c15ULL) >> 32) >= threshold;
}

/** x[i] = kept ? x[i] / (1 - p) : 0 over elements [0, n) whose mask indices are base + i. */
void dropout_range(float* x, size_t n, const Drop& d, uint64_t base = 0) {
  if (!d.on()) return;
  const uint32_t th = d.threshold();
  const float sc = d.scale();
  for (size_t i = 0; i < n; ++i) x[i] = kept(d.key, base + i, th) ? x[i] * sc : 0.0f;
}

void dropout_p(ThreadPool* pool, float* x, size_t n, const Drop& d) {
  if (!d.on()) return;
  const int parts = parts_for(n, 1 << 14);
  parallel(pool, parts, [&](int p) {
    size_t b, e;
    part_range(n, parts, p, b, e);
    dropout_range(x + b, e - b, d, b);
  });
}

void layer_norm_fwd_p(ThreadPool* pool, const float* x, const float* g, const float* b, float* y, float* xhat,
                      float* rstd, int rows, int cols, float eps) {
  const int parts = parts_for(static_cast<size_t>(rows), 16);
  parallel(pool, parts, [&](int p) {
    size_t r0, r1;
    part_range(static_cast<size_t>(rows), parts, p, r0, r1);
    for (size_t r = r0; r < r1; ++r)
      ln_row_fwd(x + r * cols, g, b, y + r * cols, xhat + r * cols, rstd + r, cols, eps);
  });
}

void layer_norm_bwd_p(ThreadPool* pool, const float* dy, const float* xhat, const float* rstd, const float* g,
                      float* dx, float* dg, float* db, int rows, int cols) {
  const int parts = parts_for(static_cast<size_t>(rows), 32, 16);
  const bool wantParams = dg != nullptr || db != nullptr;
  std::vector<double> part(wantParams ? static_cast<size_t>(parts) * 2 * cols : 0, 0.0);
  parallel(pool, parts, [&](int p) {
    size_t r0, r1;
    part_range(static_cast<size_t>(rows), parts, p, r0, r1);
    double* pg = wantParams ? part.data() + static_cast<size_t>(p) * 2 * cols : nullptr;
    double* pb = wantParams ? pg + cols : nullptr;
    for (size_t r = r0; r < r1; ++r) {
      const float* d = dy + r * cols;
      const float* xh = xhat + r * cols;
      double s1 = 0.0, s2 = 0.0;
      for (int j = 0; j < cols; ++j) {
        const double t = static_cast<double>(d[j]) * g[j];
        s1 += t;
        s2 += t * xh[j];
        if (wantParams) {
          pg[j] += static_cast<double>(d[j]) * xh[j];
          pb[j] += d[j];
        }
      }
      const double m1 = s1 / cols, m2 = s2 / cols, rs = rstd[r];
      float* o = dx + r * cols;
      for (int j = 0; j < cols; ++j)
        o[j] = static_cast<float>(rs * (static_cast<double>(d[j]) * g[j] - m1 - xh[j] * m2));
    }
  });
  if (!wantParams) return;
  for (int j = 0; j < cols; ++j) {
    double sg = 0.0, sb = 0.0;
    for (int p = 0; p < parts; ++p) {
      sg += part[static_cast<size_t>(p) * 2 * cols + j];
      sb += part[static_cast<size_t>(p) * 2 * cols + cols + j];
    }
    if (dg) dg[j] += static_cast<float>(sg);
    if (db) db[j] += static_cast<float>(sb);
  }
}

void gelu_bwd_p(ThreadPool* pool, const float* u, const float* dy, float* du, size_t n) {
  const int parts = parts_for(n, 1 << 14);
  parallel(pool, parts, [&](int p) {
    size_t b, e;
    part_range(n, parts, p, b, e);
    for (size_t i = b; i < e; ++i) du[i] = dy[i] * gelu_grad(u[i]);
  });
}

// Visible keys of one sequence (all keys when none is visible: HF's uniform fallback).
void visible_keys(const int32_t* mask, int L, std::vector<int>& idx) {
  idx.clear();
  for (int j = 0; j < L; ++j)
    if (mask[j] != 0) idx.push_back(j);
  if (idx.empty())
    for (int j = 0; j < L; ++j) idx.push_back(j);
}

// Mask index of probability (b, h, query i, key j) (j = original key position).
inline uint64_t prob_index(int b, int h, int i, int j, int nh, int L) {
  return ((static_cast<uint64_t>(b) * nh + h) * L + i) * L + j;
}

// P with dropout applied (Pd = P * mask / (1 - p)) into dst [L, nv].
void dropped_probs(const float* P, int b, int h, int nh, int L, const std::vector<int>& idx, const Drop& d, float* dst) {
  const int nv = static_cast<int>(idx.size());
  const uint32_t th = d.threshold();
  const float sc = d.scale();
  for (int r = 0; r < L; ++r)
    for (int j = 0; j < nv; ++j) {
      const size_t o = static_cast<size_t>(r) * nv + j;
      dst[o] = kept(d.key, prob_index(b, h, r, idx[j], nh, L), th) ? P[o] * sc : 0.0f;
    }
}

void attention_fwd_impl(const cpu::Context& ctx, const float* qkv, const int32_t* mask, int B, int L, int nh, int D,
                        float* probs, float* out, const Drop& drop) {
  const int H = nh * D;
  const long ld = 3L * H;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  parallel(ctx.pool, B * nh, [&](int i) {
    const int b = i / nh, h = i % nh;
    thread_local std::vector<int> idx;
    thread_local cpu::PackedMatrix pk, pv;
    const int32_t* mrow = mask + static_cast<size_t>(b) * L;
    visible_keys(mrow, L, idx);
    bool any = false;
    for (int j = 0; j < L && !any; ++j) any = mrow[j] != 0;
    const int nv = static_cast<int>(idx.size());
    const float* q = qkv + static_cast<size_t>(b) * L * ld + static_cast<size_t>(h) * D;
    const float* k = q + H;
    const float* v = q + 2 * H;
    const cpu::Context c{ctx.isa, nullptr};
    float* P = probs + static_cast<size_t>(i) * L * L;  // [L, nv]
    if (any) {
      pack_generic(ctx.isa, nv, D, k, ld, idx.data(), false, pk);
      mm(c, q, ld, false, pk, nullptr, P, nv, L);
      for (int r = 0; r < L; ++r) {
        float* pr = P + static_cast<size_t>(r) * nv;
        float mx = -INFINITY;
        for (int j = 0; j < nv; ++j) {
          pr[j] *= scale;
          mx = std::max(mx, pr[j]);
        }
        double sum = 0.0;
        for (int j = 0; j < nv; ++j) {
          pr[j] = std::exp(pr[j] - mx);
          sum += pr[j];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int j = 0; j < nv; ++j) pr[j] *= inv;
      }
    } else {
      const float u = 1.0f / static_cast<float>(L);
      std::fill(P, P + static_cast<size_t>(L) * nv, u);
    }
    pack_generic(ctx.isa, D, nv, v, ld, idx.data(), true, pv);
    const float* Pv = P;
    if (drop.on()) {
      thread_local std::vector<float> pd;
      pd.resize(static_cast<size_t>(L) * nv);
      dropped_probs(P, b, h, nh, L, idx, drop, pd.data());
      Pv = pd.data();
    }
    mm(c, Pv, nv, false, pv, nullptr, out + static_cast<size_t>(b) * L * H + static_cast<size_t>(h) * D, H, L);
  });
}

void attention_bwd_impl(const cpu::Context& ctx, const float* qkv, const int32_t* mask, int B, int L, int nh, int D,
                        const float* probs, const float* dout, float* dqkv, const Drop& drop) {
  const int H = nh * D;
  const long ld = 3L * H;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  // Rows of K and V that are not visible keys get exactly 0.
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < L; ++t) {
      float* row = dqkv + (static_cast<size_t>(b) * L + t) * ld;
      std::fill(row + H, row + 3 * H, 0.0f);
    }
  parallel(ctx.pool, B * nh, [&](int i) {
    const int b = i / nh, h = i % nh;
    thread_local std::vector<int> idx;
    thread_local std::vector<float> dP, tmp, pd;
    thread_local cpu::PackedMatrix pm;
    visible_keys(mask + static_cast<size_t>(b) * L, L, idx);
    const int nv = static_cast<int>(idx.size());
    const size_t base = static_cast<size_t>(b) * L * ld + static_cast<size_t>(h) * D;
    const float* q = qkv + base;
    const float* k = q + H;
    const float* v = q + 2 * H;
    float* dq = dqkv + base;
    float* dk = dq + H;
    float* dv = dq + 2 * H;
    const float* dO = dout + static_cast<size_t>(b) * L * H + static_cast<size_t>(h) * D;
    const float* P = probs + static_cast<size_t>(i) * L * L;
    const cpu::Context c{ctx.isa, nullptr};
    dP.resize(static_cast<size_t>(L) * nv);
    tmp.resize(static_cast<size_t>(nv) * D);
    // dP = dO V^T  [L, nv]
    pack_generic(ctx.isa, nv, D, v, ld, idx.data(), false, pm);
    mm(c, dO, H, false, pm, nullptr, dP.data(), nv, L);
    // With dropout, O = Pd V (Pd = P * mask / (1 - p)): dV = Pd^T dO and dP = mask / (1 - p) * (dO V^T).
    const float* Pv = P;
    if (drop.on()) {
      pd.resize(static_cast<size_t>(L) * nv);
      dropped_probs(P, b, h, nh, L, idx, drop, pd.data());
      Pv = pd.data();
      const uint32_t th = drop.threshold();
      const float sc = drop.scale();
      for (int r = 0; r < L; ++r)
        for (int j = 0; j < nv; ++j) {
          float& g = dP[static_cast<size_t>(r) * nv + j];
          g = kept(drop.key, prob_index(b, h, r, idx[j], nh, L), th) ? g * sc : 0.0f;
        }
    }
    // dV = Pd^T dO  [nv, D]
    pack_generic(ctx.isa, D, L, dO, H, nullptr, true, pm);
    mm(c, Pv, nv, true, pm, nullptr, tmp.data(), D, nv);
    for (int jj = 0; jj < nv; ++jj)
      std::memcpy(dv + static_cast<size_t>(idx[jj]) * ld, tmp.data() + static_cast<size_t>(jj) * D, sizeof(float) * D);
    // dS = P * (dP - rowdot(P, dP)) * scale  (softmax backward over the visible keys only)
    for (int r = 0; r < L; ++r) {
      const float* pr = P + static_cast<size_t>(r) * nv;
      float* dr = dP.data() + static_cast<size_t>(r) * nv;
      double dot = 0.0;
      for (int j = 0; j < nv; ++j) dot += static_cast<double>(pr[j]) * dr[j];
      const float d = static_cast<float>(dot);
      for (int j = 0; j < nv; ++j) dr[j] = pr[j] * (dr[j] - d) * scale;
    }
    // dQ = dS K  [L, D]
    pack_generic(ctx.isa, D, nv, k, ld, idx.data(), true, pm);
    mm(c, dP.data(), nv, false, pm, nullptr, dq, ld, L);
    // dK = dS^T Q  [nv, D]
    pack_generic(ctx.isa, D, L, q, ld, nullptr, true, pm);
    mm(c, dP.data(), nv, true, pm, nullptr, tmp.data(), D, nv);
    for (int jj = 0; jj < nv; ++jj)
      std::memcpy(dk + static_cast<size_t>(idx[jj]) * ld, tmp.data() + static_cast<size_t>(jj) * D, sizeof(float) * D);
  });
}

bool is_no_decay(const std::string& name) {
  return name.find("LayerNorm") != std::string::npos ||
         (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0);
}

const char* head_str(TrainHead h) {
  switch (h) {
    case TrainHead::None: return "none";
    case TrainHead::Linear: return "linear";
    case TrainHead::Bert: return "bert";
    case TrainHead::Roberta: return "roberta";
    case TrainHead::Electra: return "electra";
  }
  return "?";
}

}  // namespace

// ------------------------------------------------------------------------------------------------
void validate_train_config(const TrainConfig& c) {
  EncoderConfig e = c.encoder;
  e.head = HeadKind::None;
  e.numLabels = 0;
  validate_config(e);
  const int h = static_cast<int>(c.head);
  if (h < 0 || h > 4) throw bad("head must be none, linear, bert, roberta or electra");
  const int p = static_cast<int>(c.pooling);
  if (p < 0 || p > 1) throw bad("pooling must be mean or cls");
  if (c.head == TrainHead::None) {
    if (c.loss != LossKind::Mnrl) throw bad("a model without a head can only be trained with the MNRL loss");
    if (c.numOutputs != 0) throw bad("numOutputs must be 0 without a head");
  } else {
    if (c.loss == LossKind::Mnrl) throw bad("the MNRL loss trains the pooled embedding: head must be 'none'");
    if (c.numOutputs <= 0) throw bad(std::string("numOutputs must be > 0 for head '") + head_str(c.head) + "'");
    if (c.loss == LossKind::Mse && c.numOutputs != 1)
      throw bad("the MSE loss needs numOutputs 1 (one regression score), got " + std::to_string(c.numOutputs));
  }
  if (c.head == TrainHead::Bert && !c.encoder.hasPooler)
    throw bad("head 'bert' classifies the pooler output, so encoder.hasPooler must be true");
  if (!c.classWeights.empty()) {
    if (c.loss != LossKind::CrossEntropy) throw bad("classWeights only apply to the cross-entropy loss");
    if (static_cast<int>(c.classWeights.size()) != c.numOutputs)
      throw bad("classWeights has " + std::to_string(c.classWeights.size()) + " entries, expected numOutputs = " +
                std::to_string(c.numOutputs));
    for (float w : c.classWeights)
      if (!(std::isfinite(w) && w >= 0)) throw bad("classWeights must be finite and >= 0");
  }
  if (!(std::isfinite(c.mnrlScale) && c.mnrlScale > 0)) throw bad("mnrlScale must be > 0");
  auto prob = [](float p, const char* name, bool allowAuto) {
    if (allowAuto && p < 0) return;
    if (!(p >= 0.0f && p < 1.0f)) throw bad(std::string("dropout.") + name + " must be in [0, 1)");
  };
  prob(c.dropout.hidden, "hidden", false);
  prob(c.dropout.attention, "attention", false);
  prob(c.dropout.classifier, "classifier", true);
  const OptimizerConfig& o = c.optimizer;
  if (!(o.beta1 >= 0 && o.beta1 < 1)) throw bad("beta1 must be in [0, 1)");
  if (!(o.beta2 >= 0 && o.beta2 < 1)) throw bad("beta2 must be in [0, 1)");
  if (!(o.eps > 0 && std::isfinite(o.eps))) throw bad("eps must be > 0");
  if (!(o.weightDecay >= 0 && std::isfinite(o.weightDecay))) throw bad("weightDecay must be >= 0");
  if (!std::isfinite(o.maxGradNorm)) throw bad("maxGradNorm must be finite (<= 0 = no clipping)");
}

// ------------------------------------------------------------------------------------------------
struct FineTuneModel::Impl {
  struct Lin {
    size_t w = 0, b = 0;
    int out = 0, in = 0;
    cpu::PackedMatrix fwd, bwd;  // W [out, in] and W^T [in, out]
  };
  struct LayerP {
    Lin qkv, ao, inter, out;
    size_t ln1g = 0, ln1b = 0, ln2g = 0, ln2b = 0;
  };
  struct LayerA {
    cpu::AlignedFloats qkv, ctx, xhat1, x1, u, a, xhat2, x2;
    std::vector<float> probs, rstd1, rstd2;
  };
  struct Pass {
    int B = 0, L = 0;
    bool train = false;  // dropout on (accumulate) or off (predict)
    int id = 0;          // pass within one accumulate call (MNRL: anchors 0, positives 1)
    size_t T = 0;
    std::vector<int32_t> ids, mask, types, pos;
    cpu::AlignedFloats embXhat, embOut, proj;
    std::vector<float> embRstd;
    std::vector<LayerA> layers;
    const float* hidden = nullptr;  // [T, H]
    const float* x0 = nullptr;      // input of layer 0 [T, H]
  };
  struct HeadCache {
    std::vector<float> pooled;   // [B, H] pooled (Linear / MNRL) or h[:, 0] (Bert/Roberta/Electra)
    std::vector<float> in;       // [B, H] input of the dense layer (Roberta/Electra: dropout(h0); Bert: h0)
    std::vector<float> pre, act; // [B, H] dense pre-activation and activation (Bert/Roberta/Electra)
    std::vector<float> actd;     // [B, H] dropout(act): the input of the output layer
    std::vector<float> logits;   // [B, C]
  };

  enum Site : int { kEmb = 0, kProbs = 1, kAttnOut = 2, kFfnOut = 3, kCls1 = 4, kCls2 = 5 };

  /** The dropout of one site of one pass (off unless the pass trains and p > 0). */
  Drop drop(const Pass& p, float prob, int layer, int site) const {
    Drop d;
    if (!p.train || !(prob > 0.0f)) return d;
    d.p = prob;
    const uint64_t where = (static_cast<uint64_t>(p.id) << 40) | (static_cast<uint64_t>(layer + 1) << 8) | static_cast<uint64_t>(site);
    d.key = mix64(mix64(mix64(m.cfg_.dropout.seed ^ 0x6a09e667f3bcc908ULL) + m.calls_) + where);
    return d;
  }
  float hiddenP() const { return m.cfg_.dropout.hidden; }
  float classifierP() const { return m.cfg_.dropout.classifier < 0 ? m.cfg_.dropout.hidden : m.cfg_.dropout.classifier; }

  FineTuneModel& m;
  size_t wordEmb = 0, posEmb = 0, typeEmb = 0, embLnG = 0, embLnB = 0;
  bool hasProj = false;
  Lin proj;
  std::vector<LayerP> layers;
  size_t poolW = 0, poolB = 0;  // pooler.dense (when present)
  bool hasPoolerParams = false;
  size_t hdW = 0, hdB = 0;      // classifier.dense (Roberta / Electra)
  size_t hoW = 0, hoB = 0;      // head.weight / classifier(.out_proj) [C, H]
  bool packed = false;
  // Backward scratch.
  cpu::AlignedFloats sX, sS, sX1, sA, sQKV, sCtx, sW, sM;
  cpu::PackedMatrix sPack;

  explicit Impl(FineTuneModel& owner) : m(owner) {}

  cpu::Context ctx() const { return cpu::Context{m.isa_, m.pool_.get()}; }
  float* W(size_t off) { return m.w_.data() + off; }
  float* G(size_t off) { return m.g_.data() + off; }

  void ensure_packed() {
    if (packed) return;
    auto pk = [&](Lin& l) {
      pack_generic(m.isa_, l.out, l.in, W(l.w), l.in, nullptr, false, l.fwd);
      pack_generic(m.isa_, l.in, l.out, W(l.w), l.in, nullptr, true, l.bwd);
    };
    if (hasProj) pk(proj);
    for (LayerP& L : layers) {
      pk(L.qkv);
      pk(L.ao);
      pk(L.inter);
      pk(L.out);
    }
    packed = true;
  }

  // ---- input checks ------------------------------------------------------------------------------
  void load_pass(Pass& p, const int32_t* ids, const int32_t* mask, const int32_t* types, int B, int L, bool training,
                 const char* what) {
    const EncoderConfig& c = m.cfg_.encoder;
    if (B <= 0) throw bad(std::string(what) + ": batch must be > 0");
    if (L <= 0) throw bad(std::string(what) + ": seqLen must be > 0");
    if (ids == nullptr || mask == nullptr) throw bad(std::string(what) + ": inputIds and attentionMask are required");
    p.B = B;
    p.L = L;
    p.T = static_cast<size_t>(B) * L;
    p.ids.assign(ids, ids + p.T);
    p.mask.assign(mask, mask + p.T);
    p.types.assign(p.T, 0);
    if (types) p.types.assign(types, types + p.T);
    for (size_t i = 0; i < p.T; ++i) {
      if (p.ids[i] < 0 || p.ids[i] >= c.vocabSize)
        throw bad(std::string(what) + ": inputIds[" + std::to_string(i) + "] = " + std::to_string(p.ids[i]) +
                  " is out of range [0, " + std::to_string(c.vocabSize) + ")");
      if (p.mask[i] != 0 && p.mask[i] != 1)
        throw bad(std::string(what) + ": attentionMask[" + std::to_string(i) + "] must be 0 or 1");
      if (p.types[i] < 0 || p.types[i] >= c.typeVocabSize)
        throw bad(std::string(what) + ": tokenTypeIds[" + std::to_string(i) + "] = " + std::to_string(p.types[i]) +
                  " is out of range [0, " + std::to_string(c.typeVocabSize) + ")");
    }
    if (training)
      for (int b = 0; b < B; ++b) {
        bool any = false;
        for (int t = 0; t < L && !any; ++t) any = p.mask[static_cast<size_t>(b) * L + t] != 0;
        if (!any) throw bad(std::string(what) + ": sequence " + std::to_string(b) + " has no unmasked token");
      }
    p.pos.resize(p.T);
    cpu::position_ids(c.positionStyle, p.ids.data(), B, L, c.padTokenId, p.pos.data());
    for (int32_t v : p.pos)
      if (v >= c.maxPositions)
        throw bad(std::string(what) + ": sequence length " + std::to_string(L) + " needs position id " +
                  std::to_string(v) + " but the model has max_position_embeddings " + std::to_string(c.maxPositions));
  }

  // ---- forward -------------------------------------------------------------------------------------
  void forward(Pass& p, bool keep) {
    const EncoderConfig& c = m.cfg_.encoder;
    const int H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize, nh = c.numHeads, D = H / nh;
    const size_t T = p.T;
    const int Ti = static_cast<int>(T);
    const cpu::Context cx = ctx();
    ThreadPool* pool = m.pool_.get();
    const float eps = static_cast<float>(c.layerNormEps);

    p.embXhat.resize(T * E);
    p.embOut.resize(T * E);
    p.embRstd.resize(T);
    EmbeddingTables tables{W(wordEmb), W(posEmb), W(typeEmb), E};
    cpu::embeddings(cx, tables, p.ids.data(), p.types.data(), p.pos.data(), p.embXhat.data(), Ti);
    layer_norm_fwd_p(pool, p.embXhat.data(), W(embLnG), W(embLnB), p.embOut.data(), p.embXhat.data(), p.embRstd.data(),
                     Ti, E, eps);
    dropout_p(pool, p.embOut.data(), T * E, drop(p, hiddenP(), -1, kEmb));
    const float* x = p.embOut.data();
    if (hasProj) {
      p.proj.resize(T * H);
      mm(cx, x, E, false, proj.fwd, W(proj.b), p.proj.data(), H, Ti);
      x = p.proj.data();
    }
    p.x0 = x;
    p.layers.resize(keep ? layers.size() : 1);
    for (size_t l = 0; l < layers.size(); ++l) {
      LayerP& L = layers[l];
      LayerA& A = p.layers[keep ? l : 0];
      A.qkv.resize(T * 3 * H);
      A.ctx.resize(T * H);
      A.xhat1.resize(T * H);
      A.x1.resize(T * H);
      A.u.resize(T * I);
      A.a.resize(T * I);
      A.xhat2.resize(T * H);
      if (A.x2.size() != T * H) {
        if (!keep && l > 0) throw std::logic_error("finetune: scratch layer resized mid-forward");
        A.x2.resize(T * H);
      }
      A.rstd1.resize(T);
      A.rstd2.resize(T);
      A.probs.resize(static_cast<size_t>(p.B) * nh * p.L * p.L);
      mm(cx, x, H, false, L.qkv.fwd, W(L.qkv.b), A.qkv.data(), 3 * H, Ti);
      attention_fwd_impl(cx, A.qkv.data(), p.mask.data(), p.B, p.L, nh, D, A.probs.data(), A.ctx.data(),
                         drop(p, m.cfg_.dropout.attention, static_cast<int>(l), kProbs));
      mm(cx, A.ctx.data(), H, false, L.ao.fwd, W(L.ao.b), A.xhat1.data(), H, Ti);
      dropout_p(pool, A.xhat1.data(), T * H, drop(p, hiddenP(), static_cast<int>(l), kAttnOut));
      add_to(pool, A.xhat1.data(), x, T * H);
      layer_norm_fwd_p(pool, A.xhat1.data(), W(L.ln1g), W(L.ln1b), A.x1.data(), A.xhat1.data(), A.rstd1.data(), Ti, H,
                       eps);
      mm(cx, A.x1.data(), H, false, L.inter.fwd, W(L.inter.b), A.u.data(), I, Ti);
      cpu::gelu(cx, A.u.data(), A.a.data(), T * I);
      mm(cx, A.a.data(), I, false, L.out.fwd, W(L.out.b), A.xhat2.data(), H, Ti);
      dropout_p(pool, A.xhat2.data(), T * H, drop(p, hiddenP(), static_cast<int>(l), kFfnOut));
      add_to(pool, A.xhat2.data(), A.x1.data(), T * H);
      layer_norm_fwd_p(pool, A.xhat2.data(), W(L.ln2g), W(L.ln2b), A.x2.data(), A.xhat2.data(), A.rstd2.data(), Ti, H,
                       eps);
      x = A.x2.data();
    }
    p.hidden = x;
  }

  // Pooled vectors [B, H] for the Linear head / MNRL, or h[:, 0] for the sequence-classification heads.
  void pool_hidden(const Pass& p, bool cls, std::vector<float>& out) const {
    const int H = m.cfg_.encoder.hiddenSize;
    out.assign(static_cast<size_t>(p.B) * H, 0.0f);
    if (cls) {
      cpu::cls_pool(p.hidden, p.B, p.L, H, out.data());
      return;
    }
    cpu::mean_pool(p.hidden, p.mask.data(), p.B, p.L, H, out.data());
  }

  void pool_backward(const Pass& p, bool cls, const float* dpooled, float* dh) const {
    const int H = m.cfg_.encoder.hiddenSize;
    std::fill(dh, dh + p.T * H, 0.0f);
    for (int b = 0; b < p.B; ++b) {
      const float* d = dpooled + static_cast<size_t>(b) * H;
      if (cls) {
        std::memcpy(dh + static_cast<size_t>(b) * p.L * H, d, sizeof(float) * H);
        continue;
      }
      double count = 0;
      for (int t = 0; t < p.L; ++t) count += p.mask[static_cast<size_t>(b) * p.L + t] != 0 ? 1.0 : 0.0;
      const double denom = count > 1e-9 ? count : 1e-9;
      for (int t = 0; t < p.L; ++t) {
        if (p.mask[static_cast<size_t>(b) * p.L + t] == 0) continue;
        float* o = dh + (static_cast<size_t>(b) * p.L + t) * H;
        for (int j = 0; j < H; ++j) o[j] = static_cast<float>(d[j] / denom);
      }
    }
  }

  // y[b, :out] = x[b, :in] W^T + bias (double accumulation); the head's small GEMMs.
  static void small_linear(const float* x, int rows, int in, const float* w, const float* bias, int out, float* y) {
    for (int b = 0; b < rows; ++b)
      for (int o = 0; o < out; ++o) {
        double s = 0;
        const float* wr = w + static_cast<size_t>(o) * in;
        const float* xr = x + static_cast<size_t>(b) * in;
        for (int j = 0; j < in; ++j) s += static_cast<double>(xr[j]) * wr[j];
        y[static_cast<size_t>(b) * out + o] = static_cast<float>(s) + bias[o];
      }
  }
  // dW += dy^T x, db += sum dy, dx = dy W (dx may be null).
  static void small_linear_bwd(const float* x, const float* dy, int rows, int in, const float* w, int out, float* dw,
                               float* db, float* dx) {
    for (int o = 0; o < out; ++o) {
      double sb = 0;
      for (int b = 0; b < rows; ++b) sb += dy[static_cast<size_t>(b) * out + o];
      db[o] += static_cast<float>(sb);
      float* dwr = dw + static_cast<size_t>(o) * in;
      for (int j = 0; j < in; ++j) {
        double s = 0;
        for (int b = 0; b < rows; ++b) s += static_cast<double>(dy[static_cast<size_t>(b) * out + o]) * x[static_cast<size_t>(b) * in + j];
        dwr[j] += static_cast<float>(s);
      }
    }
    if (dx)
      for (int b = 0; b < rows; ++b)
        for (int j = 0; j < in; ++j) {
          double s = 0;
          for (int o = 0; o < out; ++o) s += static_cast<double>(dy[static_cast<size_t>(b) * out + o]) * w[static_cast<size_t>(o) * in + j];
          dx[static_cast<size_t>(b) * in + j] = static_cast<float>(s);
        }
  }

  void head_forward(const Pass& p, HeadCache& hc) {
    const TrainConfig& tc = m.cfg_;
    const int H = tc.encoder.hiddenSize, C = tc.numOutputs, B = p.B;
    const bool seqcls = tc.head == TrainHead::Bert || tc.head == TrainHead::Roberta || tc.head == TrainHead::Electra;
    pool_hidden(p, seqcls || tc.pooling == Pooling::Cls, hc.pooled);
    if (tc.head == TrainHead::None) return;
    hc.logits.assign(static_cast<size_t>(B) * C, 0.0f);
    if (tc.head == TrainHead::Linear) {
      small_linear(hc.pooled.data(), B, H, W(hoW), W(hoB), C, hc.logits.data());
      return;
    }
    // BERT: classifier(dropout(tanh(pooler(h0)))); RoBERTa/ELECTRA: out_proj(dropout(act(dense(dropout(h0))))).
    const bool bert = tc.head == TrainHead::Bert;
    hc.in = hc.pooled;
    if (!bert) dropout_range(hc.in.data(), hc.in.size(), drop(p, classifierP(), -1, kCls1));
    hc.pre.assign(static_cast<size_t>(B) * H, 0.0f);
    hc.act.resize(hc.pre.size());
    const size_t dw = bert ? poolW : hdW, db = bert ? poolB : hdB;
    small_linear(hc.in.data(), B, H, W(dw), W(db), H, hc.pre.data());
    for (size_t i = 0; i < hc.pre.size(); ++i)
      hc.act[i] = tc.head == TrainHead::Electra ? gelu_f(hc.pre[i]) : std::tanh(hc.pre[i]);
    hc.actd = hc.act;
    dropout_range(hc.actd.data(), hc.actd.size(), drop(p, classifierP(), -1, bert ? kCls1 : kCls2));
    small_linear(hc.actd.data(), B, H, W(hoW), W(hoB), C, hc.logits.data());
  }

  // dlogits -> gradient of the pre-pooling input: dpooled [B, H].
  void head_backward(const Pass& p, const HeadCache& hc, const float* dlogits, std::vector<float>& dpooled) {
    const TrainConfig& tc = m.cfg_;
    const int H = tc.encoder.hiddenSize, C = tc.numOutputs, B = p.B;
    dpooled.assign(static_cast<size_t>(B) * H, 0.0f);
    if (tc.head == TrainHead::Linear) {
      small_linear_bwd(hc.pooled.data(), dlogits, B, H, W(hoW), C, G(hoW), G(hoB), dpooled.data());
      return;
    }
    const bool bert = tc.head == TrainHead::Bert;
    std::vector<float> dact(static_cast<size_t>(B) * H);
    small_linear_bwd(hc.actd.data(), dlogits, B, H, W(hoW), C, G(hoW), G(hoB), dact.data());
    dropout_range(dact.data(), dact.size(), drop(p, classifierP(), -1, bert ? kCls1 : kCls2));
    for (size_t i = 0; i < dact.size(); ++i) {
      if (tc.head == TrainHead::Electra)
        dact[i] *= gelu_grad(hc.pre[i]);
      else
        dact[i] *= 1.0f - hc.act[i] * hc.act[i];
    }
    const size_t dw = bert ? poolW : hdW, db = bert ? poolB : hdB;
    small_linear_bwd(hc.in.data(), dact.data(), B, H, W(dw), H, G(dw), G(db), dpooled.data());
    if (!bert) dropout_range(dpooled.data(), dpooled.size(), drop(p, classifierP(), -1, kCls1));
  }

  // ---- backward ------------------------------------------------------------------------------------
  // gradOut[out, in] += dY^T X with dY [T, out] (row stride ldy), X [T, in].
  void weight_grad(const float* dY, long ldy, const float* X, int T, int out, int in, float* gradOut) {
    const cpu::Context cx = ctx();
    cpu::PackedMatrix& px = sPack;  // a member: calls are serialised, and no libuv thread keeps a copy
    pack_generic(m.isa_, in, T, X, in, nullptr, true, px);
    sW.resize(static_cast<size_t>(out) * in);
    mm(cx, dY, ldy, true, px, nullptr, sW.data(), in, out);
    add_to(m.pool_.get(), gradOut, sW.data(), static_cast<size_t>(out) * in);
  }

  // Backward of a linear layer: grads of W and b, and dX = dY W (written, not added) when dX != null.
  void linear_bwd(Lin& l, const float* dY, const float* X, int T, float* dX) {
    colsum_add(m.pool_.get(), dY, T, l.out, l.out, G(l.b));
    weight_grad(dY, l.out, X, T, l.out, l.in, G(l.w));
    if (dX) mm(ctx(), dY, l.out, false, l.bwd, nullptr, dX, l.in, T);
  }

  /** dH: gradient of the loss w.r.t. p.hidden [T, H] (exactly zero at padded rows). */
  void backward(Pass& p, const float* dH) {
    const EncoderConfig& c = m.cfg_.encoder;
    const int H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize, nh = c.numHeads, D = H / nh;
    const size_t T = p.T;
    const int Ti = static_cast<int>(T);
    ThreadPool* pool = m.pool_.get();
    const cpu::Context cx = ctx();
    sX.resize(T * H);
    sS.resize(T * H);
    sX1.resize(T * H);
    sA.resize(T * I);
    sQKV.resize(T * 3 * H);
    sCtx.resize(T * H);
    const bool hiddenDrop = p.train && hiddenP() > 0.0f;
    if (hiddenDrop) sM.resize(T * H);
    // The gradient of a dense layer's output is the LayerNorm-input gradient through its dropout mask.
    auto masked = [&](const float* g, int layer, int site) -> const float* {
      if (!hiddenDrop) return g;
      std::memcpy(sM.data(), g, sizeof(float) * T * H);
      dropout_p(pool, sM.data(), T * H, drop(p, hiddenP(), layer, site));
      return sM.data();
    };
    std::memcpy(sX.data(), dH, sizeof(float) * T * H);
    for (size_t li = layers.size(); li-- > 0;) {
      LayerP& L = layers[li];
      LayerA& A = p.layers[li];
      const float* xin = li == 0 ? p.x0 : p.layers[li - 1].x2.data();
      // LayerNorm 2 -> dS2 (= gradient of output.dense's output and of the residual x1)
      layer_norm_bwd_p(pool, sX.data(), A.xhat2.data(), A.rstd2.data(), W(L.ln2g), sS.data(), G(L.ln2g), G(L.ln2b), Ti,
                       H);
      linear_bwd(L.out, masked(sS.data(), static_cast<int>(li), kFfnOut), A.a.data(), Ti, sA.data());
      gelu_bwd_p(pool, A.u.data(), sA.data(), sA.data(), T * I);
      linear_bwd(L.inter, sA.data(), A.x1.data(), Ti, sX1.data());
      add_to(pool, sX1.data(), sS.data(), T * H);
      // LayerNorm 1 -> dS1
      layer_norm_bwd_p(pool, sX1.data(), A.xhat1.data(), A.rstd1.data(), W(L.ln1g), sS.data(), G(L.ln1g), G(L.ln1b),
                       Ti, H);
      linear_bwd(L.ao, masked(sS.data(), static_cast<int>(li), kAttnOut), A.ctx.data(), Ti, sCtx.data());
      attention_bwd_impl(cx, A.qkv.data(), p.mask.data(), p.B, p.L, nh, D, A.probs.data(), sCtx.data(), sQKV.data(),
                         drop(p, m.cfg_.dropout.attention, static_cast<int>(li), kProbs));
      linear_bwd(L.qkv, sQKV.data(), xin, Ti, sX.data());
      add_to(pool, sX.data(), sS.data(), T * H);
    }
    // Embeddings: projection (ELECTRA), LayerNorm, then scatter-add over unmasked positions only.
    float* dEmbOut = sX.data();
    cpu::AlignedFloats dE(T * E);
    const Drop embDrop = drop(p, hiddenP(), -1, kEmb);
    if (hasProj) {
      cpu::AlignedFloats tmp(T * E);
      linear_bwd(proj, sX.data(), p.embOut.data(), Ti, tmp.data());
      dropout_p(pool, tmp.data(), T * E, embDrop);
      layer_norm_bwd_p(pool, tmp.data(), p.embXhat.data(), p.embRstd.data(), W(embLnG), dE.data(), G(embLnG),
                       G(embLnB), Ti, E);
    } else {
      dropout_p(pool, dEmbOut, T * E, embDrop);
      layer_norm_bwd_p(pool, dEmbOut, p.embXhat.data(), p.embRstd.data(), W(embLnG), dE.data(), G(embLnG), G(embLnB),
                       Ti, E);
    }
    float* gw = G(wordEmb);
    float* gp = G(posEmb);
    float* gt = G(typeEmb);
    for (size_t t = 0; t < T; ++t) {
      if (p.mask[t] == 0) continue;
      const float* d = dE.data() + t * E;
      float* w = gw + static_cast<size_t>(p.ids[t]) * E;
      float* ps = gp + static_cast<size_t>(p.pos[t]) * E;
      float* ty = gt + static_cast<size_t>(p.types[t]) * E;
      for (int j = 0; j < E; ++j) {
        w[j] += d[j];
        ps[j] += d[j];
        ty[j] += d[j];
      }
    }
  }

  void check_targets(const TrainBatch& b) const {
    const TrainConfig& tc = m.cfg_;
    if (tc.loss == LossKind::CrossEntropy) {
      if (b.classLabels == nullptr) throw bad("classLabels are required for the cross-entropy loss");
      for (int i = 0; i < b.batch; ++i)
        if (b.classLabels[i] < 0 || b.classLabels[i] >= tc.numOutputs)
          throw bad("classLabels[" + std::to_string(i) + "] = " + std::to_string(b.classLabels[i]) +
                    " is out of range [0, " + std::to_string(tc.numOutputs) + ")");
    } else if (tc.loss == LossKind::Mse) {
      if (b.targets == nullptr) throw bad("targets are required for the MSE loss");
      for (int i = 0; i < b.batch; ++i)
        if (!std::isfinite(b.targets[i])) throw bad("targets[" + std::to_string(i) + "] is not finite");
    }
    if (!(std::isfinite(b.normalizer) && b.normalizer >= 0)) throw bad("normalizer must be a finite number >= 0");
  }

  // ---- losses --------------------------------------------------------------------------------------
  double loss_grad(const HeadCache& hc, const TrainBatch& b, double normalizer, std::vector<float>& dlogits) {
    const TrainConfig& tc = m.cfg_;
    const int B = b.batch, C = tc.numOutputs;
    dlogits.assign(static_cast<size_t>(B) * C, 0.0f);
    double norm = normalizer;
    if (tc.loss == LossKind::CrossEntropy) {
      if (b.classLabels == nullptr) throw bad("classLabels are required for the cross-entropy loss");
      for (int i = 0; i < B; ++i)
        if (b.classLabels[i] < 0 || b.classLabels[i] >= C)
          throw bad("classLabels[" + std::to_string(i) + "] = " + std::to_string(b.classLabels[i]) +
                    " is out of range [0, " + std::to_string(C) + ")");
      auto w = [&](int y) { return tc.classWeights.empty() ? 1.0 : static_cast<double>(tc.classWeights[y]); };
      if (!(norm > 0)) {
        norm = 0;
        for (int i = 0; i < B; ++i) norm += w(b.classLabels[i]);
        if (!(norm > 0)) throw bad("the class weights of this batch's labels sum to 0");
      }
      double loss = 0;
      for (int i = 0; i < B; ++i) {
        const float* z = hc.logits.data() + static_cast<size_t>(i) * C;
        const int y = b.classLabels[i];
        double mx = -INFINITY;
        for (int k = 0; k < C; ++k) mx = std::max(mx, static_cast<double>(z[k]));
        double s = 0;
        for (int k = 0; k < C; ++k) s += std::exp(z[k] - mx);
        const double lse = mx + std::log(s);
        const double wi = w(y) / norm;
        loss += wi * (lse - z[y]);
        for (int k = 0; k < C; ++k)
          dlogits[static_cast<size_t>(i) * C + k] = static_cast<float>(wi * (std::exp(z[k] - lse) - (k == y ? 1.0 : 0.0)));
      }
      return loss;
    }
    // MSE over [N] (never the [N, 1] x [N] broadcast).
    if (b.targets == nullptr) throw bad("targets are required for the MSE loss");
    for (int i = 0; i < B; ++i)
      if (!std::isfinite(b.targets[i])) throw bad("targets[" + std::to_string(i) + "] is not finite");
    if (!(norm > 0)) norm = B;
    double loss = 0;
    for (int i = 0; i < B; ++i) {
      const double d = static_cast<double>(hc.logits[i]) - b.targets[i];
      loss += d * d / norm;
      dlogits[i] = static_cast<float>(2.0 * d / norm);
    }
    return loss;
  }

  size_t activation_bytes(int B, int L) const {
    const EncoderConfig& c = m.cfg_.encoder;
    const size_t T = static_cast<size_t>(B) * L, H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize;
    size_t perLayer = T * (8 * H + 2 * I) + 2 * T + static_cast<size_t>(B) * c.numHeads * L * L;
    size_t total = layers.size() * perLayer + 2 * T * E + T + (hasProj ? T * H : 0);
    // backward scratch: sX, sS, sX1, sCtx, sM [T, H], sA [T, I], sQKV [T, 3H], dE [T, E], sW (max weight)
    total += T * (8 * H + I + E) + std::max({3 * H * H, I * H, H * E});
    return total * sizeof(float);
  }
};

// ------------------------------------------------------------------------------------------------
FineTuneModel::FineTuneModel(const TrainConfig& config, const WeightMap& weights, Isa isa, int threads)
    : cfg_(config), isa_(isa) {
  validate_train_config(cfg_);
  if (!cpu::isa_supported(isa)) throw std::runtime_error(std::string("ISA '") + isa_name(isa) + "' is not supported on this CPU");
  if (cfg_.loss == LossKind::CrossEntropy && cfg_.classWeights.empty()) cfg_.classWeights.assign(cfg_.numOutputs, 1.0f);
  impl_ = std::make_unique<Impl>(*this);
  Impl& im = *impl_;
  const EncoderConfig& c = cfg_.encoder;
  const int H = c.hiddenSize, E = c.embeddingSize, I = c.intermediateSize, C = cfg_.numOutputs;
  size_t total = 0;
  auto add = [&](const std::string& name, int rows, int cols, bool trainable) {
    ParamInfo p;
    p.name = name;
    p.offset = total;
    p.rows = rows;
    p.cols = cols;
    p.size = static_cast<size_t>(rows) * (cols > 0 ? cols : 1);
    p.trainable = trainable;
    p.noDecay = is_no_decay(name);
    total += p.size;
    index_[name] = params_.size();
    params_.push_back(p);
    return p.offset;
  };
  auto lin = [&](Impl::Lin& l, const std::string& prefix, int out, int in) {
    l.out = out;
    l.in = in;
    l.w = add(prefix + ".weight", out, in, true);
    l.b = add(prefix + ".bias", out, 0, true);
  };
  im.wordEmb = add("embeddings.word_embeddings.weight", c.vocabSize, E, true);
  im.posEmb = add("embeddings.position_embeddings.weight", c.maxPositions, E, true);
  im.typeEmb = add("embeddings.token_type_embeddings.weight", c.typeVocabSize, E, true);
  im.embLnG = add("embeddings.LayerNorm.weight", E, 0, true);
  im.embLnB = add("embeddings.LayerNorm.bias", E, 0, true);
  im.hasProj = E != H;
  if (im.hasProj) lin(im.proj, "embeddings_project", H, E);
  im.layers.resize(c.numLayers);
  for (int l = 0; l < c.numLayers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    Impl::LayerP& L = im.layers[l];
    // query/key/value weights adjacent ([3H, H] fused), then their biases ([3H]).
    L.qkv.out = 3 * H;
    L.qkv.in = H;
    L.qkv.w = add(p + "attention.self.query.weight", H, H, true);
    add(p + "attention.self.key.weight", H, H, true);
    add(p + "attention.self.value.weight", H, H, true);
    L.qkv.b = add(p + "attention.self.query.bias", H, 0, true);
    add(p + "attention.self.key.bias", H, 0, true);
    add(p + "attention.self.value.bias", H, 0, true);
    lin(L.ao, p + "attention.output.dense", H, H);
    L.ln1g = add(p + "attention.output.LayerNorm.weight", H, 0, true);
    L.ln1b = add(p + "attention.output.LayerNorm.bias", H, 0, true);
    lin(L.inter, p + "intermediate.dense", I, H);
    lin(L.out, p + "output.dense", H, I);
    L.ln2g = add(p + "output.LayerNorm.weight", H, 0, true);
    L.ln2b = add(p + "output.LayerNorm.bias", H, 0, true);
  }
  im.hasPoolerParams = c.hasPooler;
  if (c.hasPooler) {
    const bool used = cfg_.head == TrainHead::Bert;
    im.poolW = add("pooler.dense.weight", H, H, used);
    im.poolB = add("pooler.dense.bias", H, 0, used);
  }
  switch (cfg_.head) {
    case TrainHead::None: break;
    case TrainHead::Linear:
      im.hoW = add("head.weight", C, H, true);
      im.hoB = add("head.bias", C, 0, true);
      break;
    case TrainHead::Bert:
      im.hoW = add("classifier.weight", C, H, true);
      im.hoB = add("classifier.bias", C, 0, true);
      break;
    case TrainHead::Roberta:
    case TrainHead::Electra:
      im.hdW = add("classifier.dense.weight", H, H, true);
      im.hdB = add("classifier.dense.bias", H, 0, true);
      im.hoW = add("classifier.out_proj.weight", C, H, true);
      im.hoB = add("classifier.out_proj.bias", C, 0, true);
      break;
  }
  // Check every tensor before allocating the arenas.
  std::ostringstream problems;
  int nProblems = 0;
  for (const ParamInfo& p : params_) {
    auto it = weights.find(p.name);
    if (it == weights.end()) {
      problems << (nProblems++ ? "; " : "") << "missing weight '" << p.name << "'";
    } else if (it->second.size != p.size || (p.size > 0 && it->second.data == nullptr)) {
      problems << (nProblems++ ? "; " : "") << "weight '" << p.name << "' has " << it->second.size
               << " elements, expected " << p.size;
    }
  }
  if (nProblems) throw bad(problems.str());
  w_.resize(total);
  g_.assign(total, 0.0f);
  m_.assign(total, 0.0f);
  v_.assign(total, 0.0f);
  for (const ParamInfo& p : params_) {
    const WeightView& wv = weights.at(p.name);
    std::memcpy(w_.data() + p.offset, wv.data, sizeof(float) * p.size);
  }
  if (threads <= 0) threads = logical_cpus();
  if (threads > 1024) throw bad("threads must be <= 1024, got " + std::to_string(threads));
  pool_ = std::make_unique<ThreadPool>(threads);
  geom(isa_);
}

FineTuneModel::~FineTuneModel() = default;

size_t FineTuneModel::param_count() const {
  size_t n = 0;
  for (const ParamInfo& p : params_)
    if (p.trainable) n += p.size;
  return n;
}

void FineTuneModel::set_param(size_t i, const float* data, size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (i >= params_.size()) throw bad("parameter index out of range");
  if (n != params_[i].size)
    throw bad("parameter '" + params_[i].name + "' has " + std::to_string(params_[i].size) + " elements, got " +
              std::to_string(n));
  std::memcpy(w_.data() + params_[i].offset, data, sizeof(float) * n);
  impl_->packed = false;
}

void FineTuneModel::zero_grad() {
  std::lock_guard<std::mutex> lock(mu_);
  std::fill(g_.begin(), g_.end(), 0.0f);
}

size_t FineTuneModel::activation_bytes(int batch, int seqLen) const {
  if (batch <= 0 || seqLen <= 0) return 0;
  return impl_->activation_bytes(batch, seqLen);
}

AccumulateResult FineTuneModel::accumulate(const TrainBatch& b) {
  std::lock_guard<std::mutex> lock(mu_);
  impl_->check_targets(b);
  // Inputs are validated before anything is added to the gradients; if something fails after that
  // (out of memory), the partial gradients are cleared so a retry does not double-count.
  try {
    return accumulate_locked(b);
  } catch (const std::invalid_argument&) {
    throw;
  } catch (...) {
    std::fill(g_.begin(), g_.end(), 0.0f);
    throw;
  }
}

AccumulateResult FineTuneModel::accumulate_locked(const TrainBatch& b) {
  struct NextCall {  // every accumulate() gets fresh dropout masks
    uint64_t& c;
    ~NextCall() { ++c; }
  } next{calls_};
  Impl& im = *impl_;
  AccumulateResult res;
  const int H = cfg_.encoder.hiddenSize;
  if (cfg_.loss == LossKind::Mnrl) {
    Impl::Pass pa, pp;
    pa.train = pp.train = true;
    pp.id = 1;
    im.load_pass(pa, b.inputIds, b.attentionMask, b.tokenTypeIds, b.batch, b.seqLen, true, "anchors");
    im.load_pass(pp, b.posInputIds, b.posAttentionMask, b.posTokenTypeIds, b.posBatch, b.posSeqLen, true, "positives");
    if (b.posBatch < b.batch)
      throw bad("MNRL needs at least as many positives as anchors (" + std::to_string(b.posBatch) + " < " +
                std::to_string(b.batch) + ")");
    im.ensure_packed();
    im.forward(pa, true);
    im.forward(pp, true);
    const bool cls = cfg_.pooling == Pooling::Cls;
    std::vector<float> a, p;
    im.pool_hidden(pa, cls, a);
    im.pool_hidden(pp, cls, p);
    const int Na = pa.B, Np = pp.B;
    // L2-normalise (F.normalize, eps 1e-12).
    auto normalise = [&](const std::vector<float>& x, int n, std::vector<float>& xn, std::vector<double>& len) {
      xn.resize(x.size());
      len.resize(n);
      for (int i = 0; i < n; ++i) {
        double s = 0;
        for (int j = 0; j < H; ++j) s += static_cast<double>(x[static_cast<size_t>(i) * H + j]) * x[static_cast<size_t>(i) * H + j];
        len[i] = std::max(std::sqrt(s), 1e-12);
        for (int j = 0; j < H; ++j)
          xn[static_cast<size_t>(i) * H + j] = static_cast<float>(x[static_cast<size_t>(i) * H + j] / len[i]);
      }
    };
    std::vector<float> an, pn;
    std::vector<double> alen, plen;
    normalise(a, Na, an, alen);
    normalise(p, Np, pn, plen);
    const double scale = cfg_.mnrlScale;
    std::vector<float> scores(static_cast<size_t>(Na) * Np);
    for (int i = 0; i < Na; ++i)
      for (int j = 0; j < Np; ++j) {
        double s = 0;
        for (int k = 0; k < H; ++k) s += static_cast<double>(an[static_cast<size_t>(i) * H + k]) * pn[static_cast<size_t>(j) * H + k];
        scores[static_cast<size_t>(i) * Np + j] = static_cast<float>(scale * s);
      }
    const double norm = b.normalizer > 0 ? b.normalizer : Na;
    std::vector<double> ds(scores.size());
    double loss = 0;
    for (int i = 0; i < Na; ++i) {
      const float* z = scores.data() + static_cast<size_t>(i) * Np;
      double mx = -INFINITY;
      for (int j = 0; j < Np; ++j) mx = std::max(mx, static_cast<double>(z[j]));
      double s = 0;
      for (int j = 0; j < Np; ++j) s += std::exp(z[j] - mx);
      const double lse = mx + std::log(s);
      loss += (lse - z[i]) / norm;
      for (int j = 0; j < Np; ++j) ds[static_cast<size_t>(i) * Np + j] = (std::exp(z[j] - lse) - (j == i ? 1.0 : 0.0)) / norm;
    }
    // d(normalised) then through the normalisation.
    std::vector<float> da(a.size()), dp(p.size());
    auto through_norm = [&](const std::vector<double>& dxn, const std::vector<float>& xn, const std::vector<double>& len,
                            const std::vector<float>& x, int n, std::vector<float>& dx) {
      for (int i = 0; i < n; ++i) {
        const double* g = dxn.data() + static_cast<size_t>(i) * H;
        double s = 0, raw = 0;
        for (int j = 0; j < H; ++j) {
          s += g[j] * xn[static_cast<size_t>(i) * H + j];
          raw += static_cast<double>(x[static_cast<size_t>(i) * H + j]) * x[static_cast<size_t>(i) * H + j];
        }
        const bool clamped = std::sqrt(raw) <= 1e-12;
        for (int j = 0; j < H; ++j)
          dx[static_cast<size_t>(i) * H + j] =
              static_cast<float>(clamped ? g[j] / len[i] : (g[j] - xn[static_cast<size_t>(i) * H + j] * s) / len[i]);
      }
    };
    std::vector<double> dan(a.size(), 0.0), dpn(p.size(), 0.0);
    for (int i = 0; i < Na; ++i)
      for (int j = 0; j < Np; ++j) {
        const double d = scale * ds[static_cast<size_t>(i) * Np + j];
        for (int k = 0; k < H; ++k) {
          dan[static_cast<size_t>(i) * H + k] += d * pn[static_cast<size_t>(j) * H + k];
          dpn[static_cast<size_t>(j) * H + k] += d * an[static_cast<size_t>(i) * H + k];
        }
      }
    through_norm(dan, an, alen, a, Na, da);
    through_norm(dpn, pn, plen, p, Np, dp);
    {
      cpu::AlignedFloats dh(pp.T * H);
      im.pool_backward(pp, cls, dp.data(), dh.data());
      im.backward(pp, dh.data());
    }
    pp = Impl::Pass();  // free the positives' activations before the anchors' backward
    cpu::AlignedFloats dh(pa.T * H);
    im.pool_backward(pa, cls, da.data(), dh.data());
    im.backward(pa, dh.data());
    res.loss = loss;
    res.outputs = std::move(scores);
    res.rows = Na;
    res.cols = Np;
    return res;
  }

  Impl::Pass pass;
  pass.train = true;
  im.load_pass(pass, b.inputIds, b.attentionMask, b.tokenTypeIds, b.batch, b.seqLen, true, "batch");
  im.ensure_packed();
  im.forward(pass, true);
  Impl::HeadCache hc;
  im.head_forward(pass, hc);
  std::vector<float> dlogits, dpooled;
  res.loss = im.loss_grad(hc, b, b.normalizer, dlogits);
  im.head_backward(pass, hc, dlogits.data(), dpooled);
  const bool seqcls = cfg_.head != TrainHead::Linear;
  cpu::AlignedFloats dh(pass.T * H);
  im.pool_backward(pass, seqcls || cfg_.pooling == Pooling::Cls, dpooled.data(), dh.data());
  im.backward(pass, dh.data());
  res.outputs = std::move(hc.logits);
  res.rows = b.batch;
  res.cols = cfg_.numOutputs;
  return res;
}

double FineTuneModel::grad_norm() {
  std::lock_guard<std::mutex> lock(mu_);
  double s = 0;
  for (const ParamInfo& p : params_) {
    if (!p.trainable) continue;
    const float* g = g_.data() + p.offset;
    double t = 0;
    for (size_t j = 0; j < p.size; ++j) t += static_cast<double>(g[j]) * g[j];
    s += t;
  }
  return std::sqrt(s);
}

StepResult FineTuneModel::apply_step(double lr) {
  if (!(std::isfinite(lr) && lr >= 0)) throw bad("lr must be a finite number >= 0");
  const double norm = grad_norm();
  std::lock_guard<std::mutex> lock(mu_);
  if (!std::isfinite(norm)) {
    std::fill(g_.begin(), g_.end(), 0.0f);
    throw std::runtime_error("the gradient norm is not finite (NaN/Inf in the gradients); the step was skipped");
  }
  const OptimizerConfig& o = cfg_.optimizer;
  StepResult r;
  r.gradNorm = norm;
  r.clipCoef = o.maxGradNorm > 0 ? std::min(1.0, o.maxGradNorm / (norm + 1e-6)) : 1.0;
  ++step_;
  r.step = step_;
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(step_));
  const float stepSize = static_cast<float>(lr / bc1);
  const float bc2Sqrt = static_cast<float>(std::sqrt(bc2));
  const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2), eps = static_cast<float>(o.eps);
  const float omb1 = static_cast<float>(1.0 - o.beta1), omb2 = static_cast<float>(1.0 - o.beta2);
  const float clip = static_cast<float>(r.clipCoef);
  const bool scaleGrad = r.clipCoef < 1.0;
  for (const ParamInfo& p : params_) {
    if (!p.trainable) continue;
    const float decay =
        (p.noDecay && !o.decayBiasAndNorm) ? 1.0f : static_cast<float>(1.0 - lr * o.weightDecay);
    float* w = w_.data() + p.offset;
    float* g = g_.data() + p.offset;
    float* m = m_.data() + p.offset;
    float* v = v_.data() + p.offset;
    const int parts = parts_for(p.size, 1 << 15);
    parallel(pool_.get(), parts, [&](int part) {
      size_t b, e;
      part_range(p.size, parts, part, b, e);
      for (size_t j = b; j < e; ++j) {
        const float gj = scaleGrad ? g[j] * clip : g[j];
        w[j] *= decay;
        m[j] = b1 * m[j] + omb1 * gj;
        v[j] = b2 * v[j] + omb2 * gj * gj;
        const float den = std::sqrt(v[j]) / bc2Sqrt + eps;
        w[j] -= stepSize * (m[j] / den);
      }
    });
  }
  std::fill(g_.begin(), g_.end(), 0.0f);
  impl_->packed = false;
  return r;
}

PredictResult FineTuneModel::predict(const TrainBatch& b, bool wantPooled) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& im = *impl_;
  Impl::Pass pass;
  im.load_pass(pass, b.inputIds, b.attentionMask, b.tokenTypeIds, b.batch, b.seqLen, false, "batch");
  im.ensure_packed();
  im.forward(pass, false);
  Impl::HeadCache hc;
  im.head_forward(pass, hc);
  PredictResult r;
  r.logits = std::move(hc.logits);
  r.cols = cfg_.numOutputs;
  if (wantPooled) {
    if (cfg_.head == TrainHead::None || cfg_.head == TrainHead::Linear)
      r.pooled = std::move(hc.pooled);
    else
      im.pool_hidden(pass, cfg_.pooling == Pooling::Cls, r.pooled);
  }
  return r;
}

// ------------------------------------------------------------------------------------------------
// GradCache entry points (see the header).
namespace {
// GradCache allocates and frees one mini-batch's activations per call, on whichever libuv thread runs
// it; glibc keeps freed blocks below its (adaptive, up to 32 MiB) mmap threshold in per-thread arenas,
// so without a trim the process grows by about one mini-batch's activations per arena. Returning the
// free pages after each call keeps the peak at one mini-batch (see BENCHMARKS.md, GradCache).
void release_free_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

void check_cached(const TrainConfig& c, int pass) {
  if (c.head != TrainHead::None)
    throw bad("forward_pooled / backward_pooled (GradCache) train the pooled embedding: head must be 'none' (MNRL)");
  if (pass < 0 || pass >= (1 << 20)) throw bad("pass must be an integer in [0, 2^20), got " + std::to_string(pass));
}
}  // namespace

std::vector<float> FineTuneModel::forward_pooled(const TrainBatch& b, int pass) {
  std::lock_guard<std::mutex> lock(mu_);
  check_cached(cfg_, pass);
  Impl& im = *impl_;
  Impl::Pass p;
  p.train = true;
  p.id = pass;
  im.load_pass(p, b.inputIds, b.attentionMask, b.tokenTypeIds, b.batch, b.seqLen, true, "batch");
  im.ensure_packed();
  im.forward(p, false);
  std::vector<float> pooled;
  im.pool_hidden(p, cfg_.pooling == Pooling::Cls, pooled);
  p = Impl::Pass();
  release_free_memory();
  return pooled;
}

std::vector<float> FineTuneModel::backward_pooled(const TrainBatch& b, int pass, const float* gradPooled, size_t gradLen) {
  std::lock_guard<std::mutex> lock(mu_);
  check_cached(cfg_, pass);
  Impl& im = *impl_;
  const int H = cfg_.encoder.hiddenSize;
  Impl::Pass p;
  p.train = true;
  p.id = pass;
  im.load_pass(p, b.inputIds, b.attentionMask, b.tokenTypeIds, b.batch, b.seqLen, true, "batch");
  const size_t n = static_cast<size_t>(b.batch) * H;
  if (gradPooled == nullptr || gradLen != n)
    throw bad("gradPooled has " + std::to_string(gradPooled ? gradLen : 0) + " elements, expected batch * hiddenSize = " +
              std::to_string(n));
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(gradPooled[i])) throw bad("gradPooled[" + std::to_string(i) + "] is not finite");
  try {
    im.ensure_packed();
    im.forward(p, true);
    const bool cls = cfg_.pooling == Pooling::Cls;
    std::vector<float> pooled;
    im.pool_hidden(p, cls, pooled);
    {
      cpu::AlignedFloats dh(p.T * H);
      im.pool_backward(p, cls, gradPooled, dh.data());
      im.backward(p, dh.data());
    }
    p = Impl::Pass();
    release_free_memory();
    return pooled;
  } catch (...) {
    std::fill(g_.begin(), g_.end(), 0.0f);  // never leave a half-added mini-batch behind
    throw;
  }
}

void FineTuneModel::next_dropout_call() {
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_;
}

// ------------------------------------------------------------------------------------------------
namespace kernels {
void layer_norm_fwd(const float* x, const float* g, const float* b, float* y, float* xhat, float* rstd, int rows,
                    int cols, float eps) {
  layer_norm_fwd_p(nullptr, x, g, b, y, xhat, rstd, rows, cols, eps);
}
void layer_norm_bwd(const float* dy, const float* xhat, const float* rstd, const float* g, float* dx, float* dg,
                    float* db, int rows, int cols) {
  layer_norm_bwd_p(nullptr, dy, xhat, rstd, g, dx, dg, db, rows, cols);
}
void gelu_bwd(const float* u, const float* dy, float* du, size_t n) { gelu_bwd_p(nullptr, u, dy, du, n); }
void attention_fwd(const cpu::Context& ctx, const float* qkv, const int32_t* mask, int batch, int seqLen, int heads,
                   int headDim, float* probs, float* out, float dropP, uint64_t dropKey) {
  attention_fwd_impl(ctx, qkv, mask, batch, seqLen, heads, headDim, probs, out, Drop{dropP, dropKey});
}
void attention_bwd(const cpu::Context& ctx, const float* qkv, const int32_t* mask, int batch, int seqLen, int heads,
                   int headDim, const float* probs, const float* dout, float* dqkv, float dropP, uint64_t dropKey) {
  attention_bwd_impl(ctx, qkv, mask, batch, seqLen, heads, headDim, probs, dout, dqkv, Drop{dropP, dropKey});
}
void dropout_apply(float* x, size_t n, float p, uint64_t key) { dropout_range(x, n, Drop{p, key}); }
}  // namespace kernels

}  // namespace train
}  // namespace edu
