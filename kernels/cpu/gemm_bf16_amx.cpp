// bf16 GEMM, AMX-BF16 path: TDPBF16PS on 16 x 16 fp32 accumulator tiles, a 32 x 32 block of C in
// four tiles (tmm0-3), two A tiles (tmm4-5: 16 rows x 32 bf16 of K) and two B tiles (tmm6-7: 16 K pairs
// x 16 columns). The B tiles are read straight from the shared packed layout (edu_bf16.h): a panel of
// a K block is [len/2][16][2] bf16, i.e. rows of 64 bytes, one K pair each, which is the "VNNI" B tile
// TDPBF16PS wants, so 32 K values of a panel are one _tile_loadd with a 64-byte stride. A is packed as
// bf16 rows (stride kpad), zero padded to a multiple of 32 rows, so every tile load is full.
//
// Tile state is per thread: each task loads the palette-1 configuration (LDTILECFG) and releases it
// (TILERELEASE) when done. Linux only lets a process use the AMX tile data state after
// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 18); gemm_bf16.cpp asks once, when the path is
// first queried, and falls back to another path when the kernel refuses.
//
// The accumulation order inside TDPBF16PS is the hardware's (the SDM pseudocode keeps separate even /
// odd partial sums), and the bias is added after the K loop, so this path agrees with the scalar
// reference to fp32 rounding, not bit for bit.
//
// NOT EXECUTED ON HARDWARE: the development and CI machines have no AMX. It is compiled, selected only
// when CPUID + XCR0 report AMX-TILE + AMX-BF16 (+ AVX-512 for the packing) and Linux grants the
// permission; its driver, tile configuration and indexing run in kernels/cpu/check/bf16_checks.cc over
// emulated tile instructions (EDU_BF16_EMULATE); the instructions themselves have not run.
#ifndef EDU_BF16_EMULATE
#include <immintrin.h>
#define EDU_TILE_LOADCONFIG(cfg) _tile_loadconfig(cfg)
#define EDU_TILE_RELEASE() _tile_release()
#define EDU_TILE_ZERO(t) _tile_zero(t)
#define EDU_TILE_LOAD(t, p, strideBytes) _tile_loadd(t, p, strideBytes)
#define EDU_TILE_STORE(t, p, strideBytes) _tile_stored(t, p, strideBytes)
#define EDU_TILE_DPBF16PS(c, a, b) _tile_dpbf16ps(c, a, b)
#endif

#include <cstdint>
#include <cstring>

#include "bf16_kernels.h"

#ifndef EDU_BF16_NS
#define EDU_BF16_NS
#endif

namespace edu {
namespace cpu {
namespace EDU_BF16_NS {

// LDTILECFG's 64-byte memory operand (palette 1).
struct alignas(64) TileConfig {
  uint8_t paletteId;
  uint8_t startRow;
  uint8_t reserved[14];
  uint16_t colsb[16];  // bytes per row of tile i
  uint8_t rows[16];    // rows of tile i
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG reads 64 bytes");

constexpr int kTileRows = 16;   // rows of every tile
constexpr int kTileBytes = 64;  // bytes per tile row: 16 fp32 (C), 32 bf16 (A), 16 bf16 pairs (B)
constexpr int kBlockM = 32;     // C rows per block (two A tiles)
constexpr int kPanel = 16;      // columns per panel (one B tile / one C tile wide)
constexpr int kTileK = 32;      // K values per A / B tile

inline int imin(int a, int b) { return a < b ? a : b; }

void load_tile_config() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.paletteId = 1;
  cfg.startRow = 0;
  for (int t = 0; t < 8; ++t) {  // tmm0-3: C, tmm4-5: A, tmm6-7: B; all 16 rows x 64 bytes
    cfg.rows[t] = kTileRows;
    cfg.colsb[t] = kTileBytes;
  }
  EDU_TILE_LOADCONFIG(&cfg);
}

struct Task {
  const Bf16Call* g;
  int mblocks, nblocks;
  int mtiles;  // 32-row blocks of M
};

inline void split(int count, int blocks, int b, int& begin, int& end) {
  const int base = count / blocks, rem = count % blocks;
  begin = b * base + (b < rem ? b : rem);
  end = begin + base + (b < rem ? 1 : 0);
}

// C[rows, cols] = tmp (32 x 32, row stride 32) + bias, then the epilogue.
void write_block(const Bf16Call& g, const float* tmp, int row0, int rows, int col0, int cols) {
  for (int r = 0; r < rows; ++r) {
    float* c = g.c + static_cast<size_t>(row0 + r) * g.ldc + col0;
    const float* t = tmp + r * (2 * kPanel);
    if (g.bias != nullptr)
      for (int j = 0; j < cols; ++j) c[j] = t[j] + g.bias[col0 + j];
    else
      for (int j = 0; j < cols; ++j) c[j] = t[j];
    if (g.epilogue == Epilogue::Gelu) g.gelu(c, cols);
  }
  if (g.epilogue != Epilogue::None && g.epilogue != Epilogue::Gelu)
    epilogue_rows(g.epilogue, g.c + static_cast<size_t>(row0) * g.ldc + col0, g.ldc, rows, cols);
}

void run_task(void* ctx, int t) {
  const Task& task = *static_cast<const Task*>(ctx);
  const Bf16Call& g = *task.g;
  const int mb = t % task.mblocks, nb = t / task.mblocks;
  int t0, t1, pb0, pb1;
  split(task.mtiles, task.mblocks, mb, t0, t1);
  split(g.panels, task.nblocks, nb, pb0, pb1);
  if (t1 <= t0 || pb1 <= pb0) return;
  const uint16_t* A = static_cast<const uint16_t*>(g.a);
  const long aStride = g.lda * static_cast<long>(sizeof(uint16_t));  // bytes
  const int kblocks = (g.kpad + g.kc - 1) / g.kc;
  alignas(64) float tmp[kBlockM * 2 * kPanel];

  load_tile_config();
  for (int p = pb0; p < pb1; p += 2) {
    const bool two = p + 1 < pb1;
    const int col0 = p * kPanel;
    const int cols = imin(g.n - col0, (two ? 2 : 1) * kPanel);
    for (int u = t0; u < t1; ++u) {
      const int row0 = u * kBlockM;
      EDU_TILE_ZERO(0);
      EDU_TILE_ZERO(1);
      EDU_TILE_ZERO(2);
      EDU_TILE_ZERO(3);
      for (int kb = 0; kb < kblocks; ++kb) {
        const int k0 = kb * g.kc;
        const int len = imin(g.kc, g.kpad - k0);
        // Panel q of block kb: g.w + k0 * panels * 16 + q * len * 16 (see PackedBf16).
        const uint16_t* b0 = g.w + static_cast<size_t>(k0) * g.panels * kPanel + static_cast<size_t>(p) * len * kPanel;
        const uint16_t* b1 = b0 + static_cast<size_t>(len) * kPanel;
        for (int kk = 0; kk < len; kk += kTileK) {
          const uint16_t* a0 = A + static_cast<size_t>(row0) * g.lda + k0 + kk;
          const uint16_t* a1 = a0 + static_cast<size_t>(kTileRows) * g.lda;
          EDU_TILE_LOAD(4, a0, aStride);
          EDU_TILE_LOAD(5, a1, aStride);
          // K values kk..kk+31 of the panel = pair rows kk/2 .. kk/2+15, 32 elements each.
          EDU_TILE_LOAD(6, b0 + static_cast<size_t>(kk) * kPanel, kTileBytes);
          EDU_TILE_DPBF16PS(0, 4, 6);
          EDU_TILE_DPBF16PS(2, 5, 6);
          if (two) {
            EDU_TILE_LOAD(7, b1 + static_cast<size_t>(kk) * kPanel, kTileBytes);
            EDU_TILE_DPBF16PS(1, 4, 7);
            EDU_TILE_DPBF16PS(3, 5, 7);
          }
        }
      }
      const long tStride = 2 * kPanel * static_cast<long>(sizeof(float));  // bytes per tmp row
      EDU_TILE_STORE(0, tmp, tStride);
      EDU_TILE_STORE(2, tmp + kTileRows * 2 * kPanel, tStride);
      if (two) {
        EDU_TILE_STORE(1, tmp + kPanel, tStride);
        EDU_TILE_STORE(3, tmp + kTileRows * 2 * kPanel + kPanel, tStride);
      }
      const int rows = imin(kBlockM, g.m - row0);
      if (rows > 0) write_block(g, tmp, row0, rows, col0, cols);
    }
  }
  EDU_TILE_RELEASE();
}

void gemm_entry(const Bf16Call& g, ThreadPool* pool) {
  const int mtiles = (g.m + kBlockM - 1) / kBlockM, panels = g.panels;
  const int mcTiles = 4, ncPanels = 32;  // 128 rows x 512 columns per task
  Task task{&g, (mtiles + mcTiles - 1) / mcTiles, (panels + ncPanels - 1) / ncPanels, mtiles};
  const int threads = pool ? pool->size() : 1;
  if (threads > 1) {
    const int want = 4 * threads;
    if (task.mblocks * task.nblocks < want) {
      int nb = (want + task.mblocks - 1) / task.mblocks;
      nb = (nb + threads - 1) / threads * threads;
      task.nblocks = nb < panels ? nb : panels;  // a task pairs the panels of its own run
    }
  }
  const int ntasks = task.mblocks * task.nblocks;
  if (pool != nullptr && ntasks > 1)
    pool->parallel_for(ntasks, &run_task, &task);
  else
    for (int t = 0; t < ntasks; ++t) run_task(&task, t);
}

}  // namespace EDU_BF16_NS

#ifndef EDU_BF16_EMULATE
const Bf16Kernels& bf16_kernels_amx() {
  // A is packed exactly as for the avx512 path (bf16 rows), by that path's vectorised packer.
  static const Bf16Kernels k{Bf16Isa::Amx, true, 32, bf16_kernels_avx512().pack_a, &gemm_entry};
  return k;
}
#endif

}  // namespace cpu
}  // namespace edu
