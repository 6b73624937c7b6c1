// GEMM driver + micro-kernel, written once over a vector-traits type V and included by each
// ISA translation unit INSIDE its own anonymous namespace (so nothing compiled with -mavx512f
// can be merged with the same-named code of another path by the linker).
//
// V provides: using reg; static constexpr int W (lanes); zero(), load(p) (aligned), loadu(p),
// storeu(p, r), bcast(const float* p), fma(a, b, c) = a*b + c, add(a, b), hsum(r).
//
// Needs, before inclusion: <cstring>, "isa_kernels.h", and a function isa_gelu(float* x, int n)
// (in-place exact GELU) in the same namespace.

#ifndef EDU_RESTRICT
#define EDU_RESTRICT __restrict__
#endif

template <class V, int MR, int NV>
struct Gemm {
  static constexpr int W = V::W;
  static constexpr int NR = W * NV;

  // C[R, NR] (row stride ldc) = (load_c ? C : bias-or-0) + A · B_panel over kc, R <= MR rows.
  // DIRECT: A is read in place, row-major (row i at a + i*lda, k contiguous; broadcasts need no
  // packing). Otherwise A is an MR-row panel, k-major (element (i, k) at a[k*MR + i]).
  template <int R, bool DIRECT>
  __attribute__((always_inline)) static inline void ukernel(int kc, const float* EDU_RESTRICT a, long lda,
                                                            const float* EDU_RESTRICT b, float* c, long ldc,
                                                            const float* bias, bool load_c) {
    typename V::reg acc[R][NV];
    if (load_c) {
#pragma GCC unroll 32
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[i][j] = V::loadu(c + i * ldc + j * W);
    } else if (bias != nullptr) {
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        const typename V::reg bj = V::loadu(bias + j * W);
#pragma GCC unroll 32
        for (int i = 0; i < R; ++i) acc[i][j] = bj;
      }
    } else {
#pragma GCC unroll 32
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();
    }
    if (DIRECT) {
      const float* ar[R];
#pragma GCC unroll 32
      for (int i = 0; i < R; ++i) ar[i] = a + i * lda;
      for (int k = 0; k < kc; ++k) {
        typename V::reg bv[NV];
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) bv[j] = V::load(b + j * W);
#pragma GCC unroll 32
        for (int i = 0; i < R; ++i) {
          const typename V::reg av = V::bcast(ar[i] + k);
#pragma GCC unroll 8
          for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(av, bv[j], acc[i][j]);
        }
        b += NR;
      }
    } else {
      for (int k = 0; k < kc; ++k) {
        typename V::reg bv[NV];
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) bv[j] = V::load(b + j * W);
#pragma GCC unroll 32
        for (int i = 0; i < R; ++i) {
          const typename V::reg av = V::bcast(a + i);
#pragma GCC unroll 8
          for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(av, bv[j], acc[i][j]);
        }
        a += MR;
        b += NR;
      }
    }
#pragma GCC unroll 32
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) V::storeu(c + i * ldc + j * W, acc[i][j]);
  }

  // Row-count dispatch: one instantiation per R in [1, MR].
  template <bool DIRECT, int R = MR>
  static inline void ukernel_rows(int rows, int kc, const float* a, long lda, const float* b, float* c, long ldc,
                                  const float* bias, bool load_c) {
    if constexpr (R >= 1) {
      if (rows == R) {
        ukernel<R, DIRECT>(kc, a, lda, b, c, ldc, bias, load_c);
        return;
      }
      ukernel_rows<DIRECT, R - 1>(rows, kc, a, lda, b, c, ldc, bias, load_c);
    }
  }

  // Pack rows [m0, m0+mlen) x cols [k0, k0+kc) of op(A) (transA only) into MR-row panels, k-major,
  // zero padded.
  static void pack_a(const GemmCall& g, int m0, int mlen, int k0, int kc, float* EDU_RESTRICT dst) {
    for (int i0 = 0; i0 < mlen; i0 += MR) {
      const int rows = (mlen - i0) < MR ? (mlen - i0) : MR;
      float* p = dst + static_cast<size_t>(i0 / MR) * kc * MR;
      for (int k = 0; k < kc; ++k) {
        const float* src = g.a + static_cast<size_t>(k0 + k) * g.lda + m0 + i0;
        int r = 0;
        for (; r < rows; ++r) p[k * MR + r] = src[r];
        for (; r < MR; ++r) p[k * MR + r] = 0.0f;
      }
    }
  }

  // Work split: mblocks x nblocks tasks; block b of `count` items split into `blocks` near-equal
  // runs (sizes differ by at most one unit).
  struct Task {
    const GemmCall* g;
    int mblocks, nblocks;
    int mtiles;  // MR-row tiles of M
  };

  static inline void split(int count, int blocks, int b, int& begin, int& end) {
    const int base = count / blocks, rem = count % blocks;
    begin = b * base + (b < rem ? b : rem);
    end = begin + base + (b < rem ? 1 : 0);
  }

  struct Scratch {
    float* p = nullptr;
    size_t n = 0;
    ~Scratch() { std::free(p); }
    float* get(size_t need) {
      if (need > n) {
        std::free(p);
        p = static_cast<float*>(std::aligned_alloc(64, ((need * sizeof(float) + 63) / 64) * 64));
        if (p == nullptr) {
          n = 0;
          throw std::bad_alloc();
        }
        n = need;
      }
      return p;
    }
  };

  static void run_task(void* ctx, int t) {
    const Task& task = *static_cast<const Task*>(ctx);
    const GemmCall& g = *task.g;
    const PackedMatrix& w = *g.w;
    const int KC = w.kc;
    const int mb = t % task.mblocks, nb = t / task.mblocks;
    int t0, t1, pb0, pb1;
    split(task.mtiles, task.mblocks, mb, t0, t1);
    split(w.panels, task.nblocks, nb, pb0, pb1);
    const int m0 = t0 * MR, mlen = (g.m < t1 * MR ? g.m : t1 * MR) - m0;
    if (mlen <= 0 || pb1 <= pb0) return;
    const int n0 = pb0 * NR, nend = (w.n < pb1 * NR) ? w.n : pb1 * NR;
    const int K = w.k, N = w.n;
    const int kblocks = (K + KC - 1) / KC;
    const bool direct = !g.transA;

    float* apack = nullptr;
    if (!direct) {
      static thread_local Scratch scratch;
      apack = scratch.get(static_cast<size_t>((mlen + MR - 1) / MR) * MR * KC);
    }
    alignas(64) float tmp[MR * NR];
    alignas(64) float biasPad[NR];

    for (int kb = 0; kb < kblocks; ++kb) {
      const int k0 = kb * KC;
      const int kc = (K - k0) < KC ? (K - k0) : KC;
      const bool first = kb == 0, last = kb == kblocks - 1;
      if (!direct) pack_a(g, m0, mlen, k0, kc, apack);
      for (int p0 = n0; p0 < nend; p0 += NR) {
        // Same layout as PackedMatrix::panel (computed here so no shared inline code is emitted).
        const float* bp = w.data.data() + static_cast<size_t>(k0) * w.panels * NR +
                          static_cast<size_t>(p0 / NR) * kc * NR;
        const int cols = (N - p0) < NR ? (N - p0) : NR;
        const float* bias = nullptr;
        if (first && g.bias != nullptr) {
          if (cols == NR) {
            bias = g.bias + p0;
          } else {
            for (int j = 0; j < NR; ++j) biasPad[j] = j < cols ? g.bias[p0 + j] : 0.0f;
            bias = biasPad;
          }
        }
        // Weights are usually cold (streamed from DRAM once per forward): while this panel is in
        // use, pull the next one towards L2, a slice per row tile.
        const char* pfNext = p0 + NR < nend ? reinterpret_cast<const char*>(bp + static_cast<size_t>(kc) * NR) : nullptr;
        const int pfLines = kc * NR * static_cast<int>(sizeof(float)) / 64;
        const int pfPer = (pfLines + (mlen + MR - 1) / MR - 1) / ((mlen + MR - 1) / MR);
        for (int i0 = 0; i0 < mlen; i0 += MR) {
          const int rows = (mlen - i0) < MR ? (mlen - i0) : MR;
          if (pfNext != nullptr) {
            const int l0 = (i0 / MR) * pfPer, l1 = (l0 + pfPer) < pfLines ? l0 + pfPer : pfLines;
            for (int l = l0; l < l1; ++l) __builtin_prefetch(pfNext + static_cast<size_t>(l) * 64, 0, 2);
          }
          const float* ap = direct ? g.a + static_cast<size_t>(m0 + i0) * g.lda + k0
                                   : apack + static_cast<size_t>(i0 / MR) * kc * MR;
          float* c = g.c + static_cast<size_t>(m0 + i0) * g.ldc + p0;
          float* cc = c;
          long ldcc = g.ldc;
          if (cols != NR) {
            if (!first)
              for (int r = 0; r < rows; ++r)
                for (int j = 0; j < cols; ++j) tmp[r * NR + j] = c[r * g.ldc + j];
            cc = tmp;
            ldcc = NR;
          }
          if (direct) {
            if (rows == MR)
              ukernel<MR, true>(kc, ap, g.lda, bp, cc, ldcc, bias, !first);
            else
              ukernel_rows<true>(rows, kc, ap, g.lda, bp, cc, ldcc, bias, !first);
          } else {
            if (rows == MR)
              ukernel<MR, false>(kc, ap, 0, bp, cc, ldcc, bias, !first);
            else
              ukernel_rows<false>(rows, kc, ap, 0, bp, cc, ldcc, bias, !first);
          }
          if (cols != NR)
            for (int r = 0; r < rows; ++r)
              for (int j = 0; j < cols; ++j) c[r * g.ldc + j] = tmp[r * NR + j];
          if (last && g.epilogue == Epilogue::Gelu) {
            for (int r = 0; r < rows; ++r) isa_gelu(c + r * g.ldc, cols);
          } else if (last && g.epilogue != Epilogue::None) {
            epilogue_rows(g.epilogue, c, g.ldc, rows, cols);
          }
        }
      }
    }
  }

  static void gemm(const GemmCall& g, ThreadPool* pool, const GemmBlocking& bl) {
    if (g.m <= 0 || g.w->n <= 0) return;
    if (g.w->k <= 0) {  // C = bias (+ epilogue)
      for (int i = 0; i < g.m; ++i)
        for (int j = 0; j < g.w->n; ++j) g.c[static_cast<size_t>(i) * g.ldc + j] = g.bias ? g.bias[j] : 0.0f;
      if (g.epilogue != Epilogue::None) epilogue_rows(g.epilogue, g.c, g.ldc, g.m, g.w->n);
      return;
    }
    // M is cut into near-equal blocks of at most bl.mc rows (whole MR tiles), N into near-equal
    // runs of NR panels (at most bl.nc columns). The result does not depend on the split: every C
    // element is summed over K in the same order (KC blocks, then k).
    const int mtiles = (g.m + MR - 1) / MR, panels = g.w->panels;
    const int mcTiles = bl.mc / MR > 0 ? bl.mc / MR : 1, ncPanels = bl.nc / NR > 0 ? bl.nc / NR : 1;
    Task task{&g, (mtiles + mcTiles - 1) / mcTiles, (panels + ncPanels - 1) / ncPanels, mtiles};
    // Few tasks for the pool (small batch, or many threads): split N finer until every thread gets
    // several equal tasks (A is read in place, so a finer N split costs nothing extra).
    const int threads = pool ? pool->size() : 1;
    if (threads > 1) {
      const int want = 4 * threads;
      if (task.mblocks * task.nblocks < want) {
        int nb = (want + task.mblocks - 1) / task.mblocks;
        nb = (nb + threads - 1) / threads * threads;  // equal share per thread when possible
        task.nblocks = nb < panels ? nb : panels;
      }
    }
    const int ntasks = task.mblocks * task.nblocks;
    if (pool != nullptr && ntasks > 1)
      pool->parallel_for(ntasks, &run_task, &task);
    else
      for (int t = 0; t < ntasks; ++t) run_task(&task, t);
  }

  // Small unpacked GEMM for attention: C[M, N] = A[M, K] · B[K, N] (row-major, strides lda/ldb/ldc).
  // N must be a multiple of W (callers pad B and C); rows are done R at a time, 2W then W columns.
  template <int R, int NB>
  __attribute__((always_inline)) static inline void nn_tile(int K, const float* a, long lda, const float* b, long ldb,
                                                            float* c, long ldc) {
    typename V::reg acc[R][NB];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int j = 0; j < NB; ++j) acc[r][j] = V::zero();
    for (int kk = 0; kk < K; ++kk) {
      typename V::reg bv[NB];
#pragma GCC unroll 4
      for (int j = 0; j < NB; ++j) bv[j] = V::loadu(b + kk * ldb + j * W);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const typename V::reg av = V::bcast(a + r * lda + kk);
#pragma GCC unroll 4
        for (int j = 0; j < NB; ++j) acc[r][j] = V::fma(av, bv[j], acc[r][j]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int j = 0; j < NB; ++j) V::storeu(c + r * ldc + j * W, acc[r][j]);
  }

  template <int R>
  static inline void nn_rows(int N, int K, const float* a, long lda, const float* b, long ldb, float* c, long ldc) {
    int j = 0;
    for (; j + 2 * W <= N; j += 2 * W) nn_tile<R, 2>(K, a, lda, b + j, ldb, c + j, ldc);
    for (; j + W <= N; j += W) nn_tile<R, 1>(K, a, lda, b + j, ldb, c + j, ldc);
  }

  static void gemm_nn(int M, int N, int K, const float* a, long lda, const float* b, long ldb, float* c, long ldc) {
    int i = 0;
    for (; i + 4 <= M; i += 4) nn_rows<4>(N, K, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
    for (; i < M; ++i) nn_rows<1>(N, K, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
  }

  // Reductions used by attention.
  static float dot(const float* x, const float* y, int n) {
    typename V::reg s0 = V::zero(), s1 = V::zero();
    int i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      s0 = V::fma(V::loadu(x + i), V::loadu(y + i), s0);
      s1 = V::fma(V::loadu(x + i + W), V::loadu(y + i + W), s1);
    }
    for (; i + W <= n; i += W) s0 = V::fma(V::loadu(x + i), V::loadu(y + i), s0);
    float s = V::hsum(V::add(s0, s1));
    for (; i < n; ++i) s += x[i] * y[i];
    return s;
  }

  static void axpy(float a, const float* x, float* y, int n) {
    const typename V::reg av = V::bcast(&a);
    int i = 0;
    for (; i + W <= n; i += W) V::storeu(y + i, V::fma(av, V::loadu(x + i), V::loadu(y + i)));
    for (; i < n; ++i) y[i] += a * x[i];
  }
};
