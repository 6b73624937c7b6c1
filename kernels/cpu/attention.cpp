// Multi-head attention core: per (batch, head [, run of query blocks]) gather the visible keys
// (K transposed) and values once, then per block of 32 queries: scores, masked softmax, P·V.
// At most one [32 x seqLen] score tile per thread is live.
#include <algorithm>
#include <cmath>
#include <vector>

#include "isa_kernels.h"

namespace edu {
namespace cpu {

namespace {

constexpr int kQueryBlock = 32;

struct AttnTask {
  const AttentionShape* shape;
  const AttentionTensors* t;
  const IsaKernels* k;
  int qblocks;  // query blocks of kQueryBlock rows per (batch, head)
  int qchunks;  // tasks per (batch, head); each does a contiguous run of query blocks
};

void attention_task(void* p, int index) {
  const AttnTask& task = *static_cast<const AttnTask*>(p);
  const AttentionShape& s = *task.shape;
  const AttentionTensors& t = *task.t;
  const IsaKernels& kern = *task.k;
  const int L = s.seqLen, D = s.headDim;
  const int chunk = index % task.qchunks;
  const int bh = index / task.qchunks;
  const int b = bh / s.heads, h = bh % s.heads;
  // Query rows [q0, q1) of this task, processed kQueryBlock rows at a time.
  const int perChunk = (task.qblocks + task.qchunks - 1) / task.qchunks;
  const int q0 = chunk * perChunk * kQueryBlock;
  const int q1 = std::min(L, (chunk + 1) * perChunk * kQueryBlock);
  if (q0 >= q1) return;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));

  // Per-thread scratch: visible keys gathered (K transposed), V compacted, one score tile, one output tile.
  static thread_local std::vector<int> visible;
  static thread_local std::vector<float> scratch;
  visible.clear();
  const int32_t* mask = t.mask + static_cast<size_t>(b) * L;
  for (int j = 0; j < L; ++j)
    if (mask[j] != 0) visible.push_back(j);
  const int nv = static_cast<int>(visible.size());

  const size_t rowBase = static_cast<size_t>(b) * L;
  const float* kBase = t.k + h * D;
  const float* vBase = t.v + h * D;
  if (nv == 0) {
    // Every key masked: HF adds finfo.min to every score, so the softmax is uniform over ALL keys.
    const float u = 1.0f / static_cast<float>(L);
    for (int i = q0; i < q1; ++i) {
      float* o = t.out + (rowBase + i) * t.ldo + h * D;
      for (int d = 0; d < D; ++d) o[d] = 0.0f;
      for (int j = 0; j < L; ++j) kern.axpy(u, vBase + (rowBase + j) * t.ldv, o, D);
    }
    return;
  }
  const int W = kern.vecWidth;
  const int nvp = (nv + W - 1) / W * W;  // padded key count (columns of S)
  const int Dp = (D + W - 1) / W * W;    // padded head dim (columns of O)
  scratch.resize(static_cast<size_t>(D) * nvp + static_cast<size_t>(nv) * Dp + static_cast<size_t>(kQueryBlock) * nvp +
                 static_cast<size_t>(kQueryBlock) * Dp);
  float* kt = scratch.data();                         // [D, nvp]
  float* vc = kt + static_cast<size_t>(D) * nvp;      // [nv, Dp]
  float* sc = vc + static_cast<size_t>(nv) * Dp;      // [rows, nvp]
  float* ob = sc + static_cast<size_t>(kQueryBlock) * nvp;  // [rows, Dp]
  for (int jj = 0; jj < nvp; ++jj) {
    if (jj < nv) {
      const float* kr = kBase + (rowBase + visible[jj]) * t.ldk;
      for (int d = 0; d < D; ++d) kt[static_cast<size_t>(d) * nvp + jj] = kr[d];
    } else {
      for (int d = 0; d < D; ++d) kt[static_cast<size_t>(d) * nvp + jj] = 0.0f;
    }
  }
  for (int jj = 0; jj < nv; ++jj) {
    const float* vr = vBase + (rowBase + visible[jj]) * t.ldv;
    float* dst = vc + static_cast<size_t>(jj) * Dp;
    for (int d = 0; d < D; ++d) dst[d] = vr[d];
    for (int d = D; d < Dp; ++d) dst[d] = 0.0f;
  }
  for (int i0 = q0; i0 < q1; i0 += kQueryBlock) {
    const int rows = std::min(kQueryBlock, q1 - i0);
    // S = Q_block · K_visible^T
    const float* q = t.q + (rowBase + i0) * t.ldq + h * D;
    kern.gemm_nn(rows, nvp, D, q, t.ldq, kt, nvp, sc, nvp);
    // Row softmax numerators over the visible keys (masked keys are simply absent: weight exactly
    // 0); the 1/sum normalisation is applied to the D outputs of each row after P · V.
    alignas(64) float inv[kQueryBlock];
    for (int r = 0; r < rows; ++r) inv[r] = 1.0f / kern.exp_shift_sum(sc + static_cast<size_t>(r) * nvp, nv, scale);
    // O = P · V_visible (K = nv: the padding columns of S are never read)
    kern.gemm_nn(rows, Dp, nv, sc, nvp, vc, Dp, ob, Dp);
    for (int r = 0; r < rows; ++r) {
      float* o = t.out + (rowBase + i0 + r) * t.ldo + h * D;
      const float* src = ob + static_cast<size_t>(r) * Dp;
      const float s = inv[r];
      for (int d = 0; d < D; ++d) o[d] = src[d] * s;
    }
  }
}

}  // namespace

void attention(const Context& ctx, const AttentionShape& shape, const AttentionTensors& t) {
  if (shape.batch <= 0 || shape.seqLen <= 0 || shape.heads <= 0 || shape.headDim <= 0) return;
  AttnTask task{&shape, &t, &isa_kernels(ctx.isa), (shape.seqLen + kQueryBlock - 1) / kQueryBlock, 1};
  // K and V of a (batch, head) are gathered once per task, so split query rows across tasks only
  // when (batch x heads) alone would leave threads idle.
  const int threads = ctx.pool ? ctx.pool->size() : 1;
  const int bh = shape.batch * shape.heads;
  if (bh < 4 * threads) task.qchunks = std::min(task.qblocks, (4 * threads + bh - 1) / bh);
  const int n = bh * task.qchunks;
  if (ctx.pool != nullptr)
    ctx.pool->parallel_for(n, &attention_task, &task);
  else
    for (int i = 0; i < n; ++i) attention_task(&task, i);
}

}  // namespace cpu
}  // namespace edu
