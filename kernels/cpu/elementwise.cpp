// Row-wise and element-wise kernels: LayerNorm, GELU, tanh, bias add, masked softmax,
// embeddings gather, position ids, pooling. Shared by every ISA path (baseline flags).
#include <cmath>
#include <algorithm>
#include <cstring>
#include <vector>

#include "isa_kernels.h"

namespace edu {
namespace cpu {

namespace {

// Split [0, n) into about `parts` chunks and run body(begin, end) over the pool.
template <class Body>
void parallel_chunks(ThreadPool* pool, size_t n, size_t minChunk, Body body) {
  const int threads = pool ? pool->size() : 1;
  size_t chunks = threads > 1 ? static_cast<size_t>(threads) * 4 : 1;
  if (n / minChunk < chunks) chunks = n / minChunk > 0 ? n / minChunk : 1;
  if (chunks <= 1) {
    body(static_cast<size_t>(0), n);
    return;
  }
  const size_t step = (n + chunks - 1) / chunks;
  auto task = [&](int i) {
    const size_t b = static_cast<size_t>(i) * step;
    const size_t e = b + step < n ? b + step : n;
    if (b < e) body(b, e);
  };
  pool->run(static_cast<int>(chunks), task);
}

}  // namespace

void layer_norm(const Context& ctx, const float* x, const float* residual, const float* gamma,
                const float* beta, float* out, int rows, int cols, float eps) {
  parallel_chunks(ctx.pool, static_cast<size_t>(rows), 16, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      const float* xr = x + r * cols;
      const float* rr = residual ? residual + r * cols : nullptr;
      float* o = out + r * cols;
      // Two passes in double: mean, then the biased variance around it. (x + residual) is rounded to
      // float first, like the reference's fp32 add; keeping the mean in double means inputs with a
      // large common offset (|mean| >> std) lose nothing to the mean's float rounding.
      // Four interleaved double accumulators (fixed order: the result does not depend on threads);
      // breaks the add latency chain.
      double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
      int j = 0;
      if (rr) {
        for (; j + 4 <= cols; j += 4) {
          s0 += static_cast<double>(xr[j] + rr[j]);
          s1 += static_cast<double>(xr[j + 1] + rr[j + 1]);
          s2 += static_cast<double>(xr[j + 2] + rr[j + 2]);
          s3 += static_cast<double>(xr[j + 3] + rr[j + 3]);
        }
        for (; j < cols; ++j) s0 += static_cast<double>(xr[j] + rr[j]);
      } else {
        for (; j + 4 <= cols; j += 4) {
          s0 += xr[j];
          s1 += xr[j + 1];
          s2 += xr[j + 2];
          s3 += xr[j + 3];
        }
        for (; j < cols; ++j) s0 += xr[j];
      }
      const double mean = ((s0 + s1) + (s2 + s3)) / cols;
      double q0 = 0.0, q1 = 0.0, q2 = 0.0, q3 = 0.0;
      j = 0;
      auto val = [&](int c) { return static_cast<double>(rr ? xr[c] + rr[c] : xr[c]) - mean; };
      for (; j + 4 <= cols; j += 4) {
        const double v0 = val(j), v1 = val(j + 1), v2 = val(j + 2), v3 = val(j + 3);
        q0 += v0 * v0;
        q1 += v1 * v1;
        q2 += v2 * v2;
        q3 += v3 * v3;
      }
      for (; j < cols; ++j) {
        const double v = val(j);
        q0 += v * v;
      }
      const double sq = (q0 + q1) + (q2 + q3);
      const double rstd = 1.0 / std::sqrt(sq / cols + static_cast<double>(eps));
      for (int j = 0; j < cols; ++j) {
        const double v = static_cast<double>(rr ? xr[j] + rr[j] : xr[j]) - mean;
        o[j] = static_cast<float>(v * rstd * gamma[j] + beta[j]);
      }
    }
  });
}

void gelu(const Context& ctx, const float* x, float* y, size_t n) {
  const IsaKernels& k = isa_kernels(ctx.isa);
  parallel_chunks(ctx.pool, n, 4096, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; i += 1 << 20) {  // chunks fit an int
      const size_t len = (e - i) < (1u << 20) ? (e - i) : (1u << 20);
      if (y != x) std::memcpy(y + i, x + i, len * sizeof(float));
      k.gelu(y + i, static_cast<int>(len));
    }
  });
}

void tanh_act(const Context& ctx, const float* x, float* y, size_t n) {
  parallel_chunks(ctx.pool, n, 4096, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) y[i] = std::tanh(x[i]);
  });
}

void bias_add(const Context& ctx, float* x, const float* bias, int rows, int cols) {
  parallel_chunks(ctx.pool, static_cast<size_t>(rows), 16, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r)
      for (int j = 0; j < cols; ++j) x[r * cols + j] += bias[j];
  });
}

void masked_softmax(const Context& ctx, const float* scores, const int32_t* keyMask, float* out,
                    int rows, int cols) {
  parallel_chunks(ctx.pool, static_cast<size_t>(rows), 8, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      const float* s = scores + r * cols;
      float* o = out + r * cols;
      float mx = -INFINITY;
      int visible = 0;
      for (int j = 0; j < cols; ++j)
        if (keyMask[j] != 0) {
          ++visible;
          if (s[j] > mx) mx = s[j];
        }
      if (visible == 0) {
        const float u = 1.0f / static_cast<float>(cols);
        for (int j = 0; j < cols; ++j) o[j] = u;
        continue;
      }
      float sum = 0.0f;
      for (int j = 0; j < cols; ++j) {
        const float e = keyMask[j] != 0 ? std::exp(s[j] - mx) : 0.0f;
        o[j] = e;
        sum += e;
      }
      const float inv = 1.0f / sum;
      for (int j = 0; j < cols; ++j) o[j] *= inv;
    }
  });
}

void position_ids(PositionStyle style, const int32_t* ids, int batch, int seqLen, int padTokenId,
                  int32_t* out) {
  for (int b = 0; b < batch; ++b) {
    const int32_t* row = ids + static_cast<size_t>(b) * seqLen;
    int32_t* o = out + static_cast<size_t>(b) * seqLen;
    if (style == PositionStyle::Absolute) {
      for (int t = 0; t < seqLen; ++t) o[t] = t;
    } else {
      int32_t count = 0;
      for (int t = 0; t < seqLen; ++t) {
        if (row[t] != padTokenId) {
          ++count;
          o[t] = padTokenId + count;
        } else {
          o[t] = padTokenId;
        }
      }
    }
  }
}

void embeddings(const Context& ctx, const EmbeddingTables& tables, const int32_t* ids,
                const int32_t* types, const int32_t* pos, float* out, int tokens) {
  const int e = tables.dim;
  parallel_chunks(ctx.pool, static_cast<size_t>(tokens), 16, [&](size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; ++t) {
      const float* w = tables.word + static_cast<size_t>(ids[t]) * e;
      const float* ty = tables.tokenType + static_cast<size_t>(types ? types[t] : 0) * e;
      const float* p = tables.position + static_cast<size_t>(pos[t]) * e;
      float* o = out + t * e;
      // Hugging Face order: (inputs_embeds + token_type_embeddings) + position_embeddings.
      for (int j = 0; j < e; ++j) o[j] = (w[j] + ty[j]) + p[j];
    }
  });
}

void mean_pool(const float* h, const int32_t* mask, int batch, int seqLen, int hidden, float* out) {
  std::vector<double> acc(static_cast<size_t>(hidden));
  for (int b = 0; b < batch; ++b) {
    std::fill(acc.begin(), acc.end(), 0.0);
    double count = 0.0;
    for (int t = 0; t < seqLen; ++t) {
      if (mask[static_cast<size_t>(b) * seqLen + t] == 0) continue;
      count += 1.0;
      const float* row = h + (static_cast<size_t>(b) * seqLen + t) * hidden;
      for (int j = 0; j < hidden; ++j) acc[j] += row[j];
    }
    const double denom = count > 1e-9 ? count : 1e-9;
    float* o = out + static_cast<size_t>(b) * hidden;
    for (int j = 0; j < hidden; ++j) o[j] = static_cast<float>(acc[j] / denom);
  }
}

void cls_pool(const float* h, int batch, int seqLen, int hidden, float* out) {
  for (int b = 0; b < batch; ++b)
    std::memcpy(out + static_cast<size_t>(b) * hidden, h + static_cast<size_t>(b) * seqLen * hidden,
                sizeof(float) * hidden);
}

}  // namespace cpu
}  // namespace edu
