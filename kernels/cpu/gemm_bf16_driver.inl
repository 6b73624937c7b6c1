// Driver of the register-tile bf16 GEMM paths (scalar, avx2, avx512), written once over a
// micro-kernel type UK and included by each ISA translation unit INSIDE its own anonymous namespace
// (like gemm_driver.inl, so nothing compiled with -mavx512* can be merged with another path's code).
//
// UK provides:
//   using AElem;                 float (A values already rounded to bf16) or uint16_t (bf16 bits)
//   static constexpr int MR;     rows of a micro-tile
//   static constexpr int NP;     panels (16 columns each) of a micro-tile: 1 or 2
//   template <int R, int P> static void tile(int len, const AElem* a, long lda, const uint16_t* b,
//       long panelStride, float* c, long ldc, const float* bias, bool loadC);
//     C[R, 16 P] (row stride ldc) = (loadC ? C : bias-or-0) + A[R, len] · B over one K block of `len`
//     (even) values, in the order of edu_bf16.h: for each K pair p, c += a[2p+1] w[2p+1], then
//     c += a[2p] w[2p]. b = the block's first panel ([len/2][16][2]); panel q at b + q * panelStride.
//
// Needs, before inclusion: "bf16_kernels.h".

#ifndef EDU_RESTRICT
#define EDU_RESTRICT __restrict__
#endif

template <class UK>
struct Bf16Gemm {
  using AElem = typename UK::AElem;
  static constexpr int MR = UK::MR;
  static constexpr int NP = UK::NP;
  static constexpr int PC = 16;  // kBf16PanelCols (spelled out: no shared inline code)
  static constexpr int NRMAX = NP * PC;

  static inline int imin(int a, int b) { return a < b ? a : b; }

  template <int P, int R = MR>
  static inline void tile_rows(int rows, int len, const AElem* a, long lda, const uint16_t* b, long ps, float* c,
                               long ldc, const float* bias, bool loadC) {
    if constexpr (R >= 1) {
      if (rows == R) {
        UK::template tile<R, P>(len, a, lda, b, ps, c, ldc, bias, loadC);
        return;
      }
      tile_rows<P, R - 1>(rows, len, a, lda, b, ps, c, ldc, bias, loadC);
    }
  }

  struct Task {
    const Bf16Call* g;
    int mblocks, nblocks;
    int mtiles;  // MR-row tiles of M
  };

  static inline void split(int count, int blocks, int b, int& begin, int& end) {
    const int base = count / blocks, rem = count % blocks;
    begin = b * base + (b < rem ? b : rem);
    end = begin + base + (b < rem ? 1 : 0);
  }

  static void run_task(void* ctx, int t) {
    const Task& task = *static_cast<const Task*>(ctx);
    const Bf16Call& g = *task.g;
    const int mb = t % task.mblocks, nb = t / task.mblocks;
    int t0, t1, pb0, pb1;
    split(task.mtiles, task.mblocks, mb, t0, t1);
    split(g.panels, task.nblocks, nb, pb0, pb1);
    const int m0 = t0 * MR, mlen = imin(g.m, t1 * MR) - m0;
    if (mlen <= 0 || pb1 <= pb0) return;
    const int kblocks = (g.kpad + g.kc - 1) / g.kc;
    const AElem* A = static_cast<const AElem*>(g.a);
    alignas(64) float tmp[MR * NRMAX];
    alignas(64) float biasPad[NRMAX];

    for (int kb = 0; kb < kblocks; ++kb) {
      const int k0 = kb * g.kc;
      const int len = imin(g.kc, g.kpad - k0);
      const bool first = kb == 0, last = kb == kblocks - 1;
      // Block kb starts at k0 * panels * 16; panel q of it at + q * len * 16 (see PackedBf16).
      const uint16_t* block = g.w + static_cast<size_t>(k0) * g.panels * PC;
      const long ps = static_cast<long>(len) * PC;
      for (int p = pb0; p < pb1; p += NP) {
        const int np = imin(NP, pb1 - p);
        const uint16_t* bp = block + static_cast<size_t>(p) * ps;
        const int col0 = p * PC;
        const int cols = imin(g.n - col0, np * PC);
        const bool full = cols == np * PC;
        const float* bias = nullptr;
        if (first && g.bias != nullptr) {
          if (full) {
            bias = g.bias + col0;
          } else {
            for (int j = 0; j < NRMAX; ++j) biasPad[j] = j < cols ? g.bias[col0 + j] : 0.0f;
            bias = biasPad;
          }
        }
        for (int i0 = 0; i0 < mlen; i0 += MR) {
          const int rows = imin(MR, mlen - i0);
          const AElem* ap = A + static_cast<size_t>(m0 + i0) * g.lda + k0;
          float* c = g.c + static_cast<size_t>(m0 + i0) * g.ldc + col0;
          float* cc = c;
          long ldcc = g.ldc;
          if (!full) {
            if (!first)
              for (int r = 0; r < rows; ++r)
                for (int j = 0; j < cols; ++j) tmp[r * NRMAX + j] = c[r * g.ldc + j];
            cc = tmp;
            ldcc = NRMAX;
          }
          if (np == NP) {
            if (rows == MR)
              UK::template tile<MR, NP>(len, ap, g.lda, bp, ps, cc, ldcc, bias, !first);
            else
              tile_rows<NP>(rows, len, ap, g.lda, bp, ps, cc, ldcc, bias, !first);
          } else {
            if constexpr (NP > 1) tile_rows<1>(rows, len, ap, g.lda, bp, ps, cc, ldcc, bias, !first);
          }
          if (!full)
            for (int r = 0; r < rows; ++r)
              for (int j = 0; j < cols; ++j) c[r * g.ldc + j] = tmp[r * NRMAX + j];
          if (last && g.epilogue == Epilogue::Gelu) {
            for (int r = 0; r < rows; ++r) g.gelu(c + r * g.ldc, cols);
          } else if (last && g.epilogue != Epilogue::None) {
            epilogue_rows(g.epilogue, c, g.ldc, rows, cols);
          }
        }
      }
    }
  }

  // Same work split as the fp32 driver: M in near-equal blocks of at most mc rows (whole MR tiles), N
  // in near-equal runs of panels (at most nc columns), split finer when the pool would get few tasks.
  // The result does not depend on the split or the thread count: every C element is summed over K in
  // the same order.
  static void gemm(const Bf16Call& g, ThreadPool* pool, int mc, int nc) {
    const int mtiles = (g.m + MR - 1) / MR, panels = g.panels;
    const int mcTiles = mc / MR > 0 ? mc / MR : 1, ncPanels = nc / PC > 0 ? nc / PC : 1;
    Task task{&g, (mtiles + mcTiles - 1) / mcTiles, (panels + ncPanels - 1) / ncPanels, mtiles};
    const int threads = pool ? pool->size() : 1;
    if (threads > 1) {
      const int want = 4 * threads;
      if (task.mblocks * task.nblocks < want) {
        int nb = (want + task.mblocks - 1) / task.mblocks;
        nb = (nb + threads - 1) / threads * threads;
        task.nblocks = nb < panels ? nb : panels;
      }
    }
    const int ntasks = task.mblocks * task.nblocks;
    if (pool != nullptr && ntasks > 1)
      pool->parallel_for(ntasks, &run_task, &task);
    else
      for (int t = 0; t < ntasks; ++t) run_task(&task, t);
  }
};
