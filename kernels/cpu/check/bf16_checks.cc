// Self-checks of the bf16 GEMM paths, including the two this machine cannot execute. Not part of the
// addon; build and run with
//   cmake --build build --target edu_bf16_check && ./build/edu_bf16_check
// (test/bf16.test.ts does exactly that).
//
//  1. The avx512 path (gemm_bf16_avx512bf16.cpp) compiled over an EMULATED zmm: VDPBF16PS as the Intel
//     SDM pseudocode defines it (per lane: c += a[2i+1] b[2i+1]; c += a[2i] b[2i]; each accumulation
//     rounded to nearest even, denormal inputs / outputs flushed to zero). Its driver, 14 x 32 tiles,
//     two-panel pairing, K blocks, tails, packing and threading must give results bit-identical to the
//     scalar reference path.
//  2. The amx path (gemm_bf16_amx.cpp) compiled over EMULATED tile instructions: LDTILECFG (palette 1,
//     per-tile rows / colsb checked against the AMX limits), TILELOADD / TILESTORED with byte strides,
//     TILEZERO, TDPBF16PS as the Intel intrinsics-guide pseudocode defines it, TILERELEASE. Agreement
//     with the scalar reference within fp32 summation-order rounding (4 sqrt(K) eps32 sum|a w|).
//  3. The real avx2 path against the scalar path: bit-identical.
// Every buffer the kernels read (packed weights via aligned_alloc, packed A, C) ends at a page followed
// by an inaccessible guard page, so a read past the end crashes here instead of passing silently.
//
// What this does NOT check: that the real _mm512_dpbf16_ps / _tile_* intrinsics behave as the emulation
// (they have never run on this project's machines: no AVX512_BF16, no AMX).
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <map>
#include <mutex>
#include <random>
#include <vector>

#include "bf16_kernels.h"
#include "isa_kernels.h"

// ---------------------------------------------------------------- guard-page allocations
extern "C" void __libc_free(void*);
namespace guard {
std::recursive_mutex mu;  // recursive: erasing a map node frees it, which comes back through free()
std::map<uintptr_t, std::pair<void*, size_t>>* blocks = nullptr;  // user pointer -> mapping
size_t page = 4096;
// n bytes (rounded up to 64) ending exactly at a PROT_NONE page, so 64-byte aligned.
void* alloc(size_t n) {
  const size_t rounded = ((n + 63) / 64) * 64;
  const size_t pages = (rounded + page - 1) / page + 1;
  char* base = static_cast<char*>(mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (base == MAP_FAILED) return nullptr;
  mprotect(base + (pages - 1) * page, page, PROT_NONE);
  char* user = base + (pages - 1) * page - rounded;
  std::lock_guard<std::recursive_mutex> lock(mu);
  if (blocks == nullptr) blocks = new std::map<uintptr_t, std::pair<void*, size_t>>();
  (*blocks)[reinterpret_cast<uintptr_t>(user)] = {base, pages * page};
  return user;
}
// Unmaps a guarded block; false when p is not one.
bool release(void* p) {
  std::pair<void*, size_t> m;
  {
    std::lock_guard<std::recursive_mutex> lock(mu);
    if (blocks == nullptr) return false;
    auto it = blocks->find(reinterpret_cast<uintptr_t>(p));
    if (it == blocks->end()) return false;
    m = it->second;
    blocks->erase(it);
  }
  munmap(m.first, m.second);
  return true;
}
}  // namespace guard
// Every aligned_alloc (PackedBf16, Bf16Workspace, AlignedFloats) gets a guard page after it.
extern "C" void* aligned_alloc(size_t, size_t n) { return guard::alloc(n); }
extern "C" void free(void* p) {
  if (p == nullptr || guard::release(p)) return;
  __libc_free(p);
}

namespace edu {
namespace cpu {

inline float bits_to_float(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
inline uint32_t float_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
inline float daz(float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; }
inline float bf(uint16_t b) { return daz(bits_to_float(static_cast<uint32_t>(b) << 16)); }

// ---------------------------------------------------------------- emulated AVX512_BF16 (VDPBF16PS)
struct Zmm {
  struct reg { float v[16]; };
  struct wreg { uint32_t v[16]; };
  static reg zero() { reg r; for (float& x : r.v) x = 0; return r; }
  static reg loadu(const float* p) { reg r; std::memcpy(r.v, p, 64); return r; }
  static void storeu(float* p, reg r) { std::memcpy(p, r.v, 64); }
  static wreg load_pairs(const uint16_t* p) {
    if (reinterpret_cast<uintptr_t>(p) % 64) { std::printf("MISALIGNED _mm512_load_si512\n"); std::abort(); }
    wreg r; std::memcpy(r.v, p, 64); return r;
  }
  static wreg bcast_pair(const uint16_t* p) { uint32_t v; std::memcpy(&v, p, 4); wreg r; for (auto& x : r.v) x = v; return r; }
  static reg dp(reg acc, wreg a, wreg b) {
    for (int i = 0; i < 16; ++i) {
      float c = daz(acc.v[i]);
      c = daz(c + bf(static_cast<uint16_t>(a.v[i] >> 16)) * bf(static_cast<uint16_t>(b.v[i] >> 16)));  // odd first
      c = daz(c + bf(static_cast<uint16_t>(a.v[i])) * bf(static_cast<uint16_t>(b.v[i])));
      acc.v[i] = c;
    }
    return acc;
  }
  static void round_store16(const float* src, uint16_t* dst) { for (int i = 0; i < 16; ++i) dst[i] = float_to_bf16(src[i]); }
};

// ---------------------------------------------------------------- emulated AMX tiles
struct EmuTile {
  int rows = 0, colsb = 0;
  unsigned char d[16][64];
};
thread_local EmuTile tmm[8];
thread_local bool tilesConfigured = false;

[[noreturn]] void amx_fail(const char* what) {
  std::printf("AMX EMULATION: %s\n", what);
  std::abort();
}
void emu_loadconfig(const void* cfg) {
  const unsigned char* c = static_cast<const unsigned char*>(cfg);
  if (reinterpret_cast<uintptr_t>(cfg) % 64) amx_fail("tile config not 64-byte aligned");
  if (c[0] != 1) amx_fail("palette must be 1");
  if (c[1] != 0) amx_fail("start_row must be 0");
  for (int i = 2; i < 16; ++i) if (c[i]) amx_fail("reserved bytes must be 0");
  for (int t = 0; t < 8; ++t) {
    uint16_t colsb;
    std::memcpy(&colsb, c + 16 + 2 * t, 2);
    const int rows = c[48 + t];
    if (colsb > 64 || rows > 16) amx_fail("tile larger than 16 rows x 64 bytes");
    if ((colsb == 0) != (rows == 0)) amx_fail("tile with rows but no columns (or the reverse)");
    tmm[t].rows = rows;
    tmm[t].colsb = colsb;
    std::memset(tmm[t].d, 0, sizeof tmm[t].d);
  }
  tilesConfigured = true;
}
void need(int t) {
  if (!tilesConfigured) amx_fail("tile instruction before LDTILECFG");
  if (tmm[t].rows == 0) amx_fail("tile not configured");
}
void emu_zero(int t) { need(t); std::memset(tmm[t].d, 0, sizeof tmm[t].d); }
void emu_load(int t, const void* base, long stride) {
  need(t);
  for (int r = 0; r < tmm[t].rows; ++r) std::memcpy(tmm[t].d[r], static_cast<const char*>(base) + r * stride, tmm[t].colsb);
}
void emu_store(int t, void* base, long stride) {
  need(t);
  for (int r = 0; r < tmm[t].rows; ++r) std::memcpy(static_cast<char*>(base) + r * stride, tmm[t].d[r], tmm[t].colsb);
}
// Intel intrinsics guide, _tile_dpbf16ps: FOR m, FOR k < a.colsb/4, FOR n < dst.colsb/4:
//   tmp.fp32[n] += FP32(a.row[m].bf16[2k+0]) * FP32(b.row[k].bf16[2n+0])
//   tmp.fp32[n] += FP32(a.row[m].bf16[2k+1]) * FP32(b.row[k].bf16[2n+1])
void emu_dp(int c, int a, int b) {
  need(c); need(a); need(b);
  if (tmm[a].rows != tmm[c].rows || tmm[a].colsb / 4 != tmm[b].rows || tmm[b].colsb != tmm[c].colsb)
    amx_fail("TDPBF16PS shapes do not match (M x K) . (K/2 x N x 2) -> M x N");
  for (int m = 0; m < tmm[c].rows; ++m) {
    float row[16];
    std::memcpy(row, tmm[c].d[m], 64);
    for (int k = 0; k < tmm[a].colsb / 4; ++k) {
      uint16_t ap[2];
      std::memcpy(ap, tmm[a].d[m] + 4 * k, 4);
      for (int n = 0; n < tmm[c].colsb / 4; ++n) {
        uint16_t bp[2];
        std::memcpy(bp, tmm[b].d[k] + 4 * n, 4);
        row[n] = daz(daz(row[n]) + bf(ap[0]) * bf(bp[0]));
        row[n] = daz(row[n] + bf(ap[1]) * bf(bp[1]));
      }
    }
    std::memcpy(tmm[c].d[m], row, 64);
  }
}
void emu_release() { tilesConfigured = false; }

}  // namespace cpu
}  // namespace edu

#define EDU_BF16_EMULATE 1
#define EDU_TILE_LOADCONFIG(cfg) emu_loadconfig(cfg)
#define EDU_TILE_RELEASE() emu_release()
#define EDU_TILE_ZERO(t) emu_zero(t)
#define EDU_TILE_LOAD(t, p, s) emu_load(t, p, s)
#define EDU_TILE_STORE(t, p, s) emu_store(t, p, s)
#define EDU_TILE_DPBF16PS(c, a, b) emu_dp(c, a, b)

#define EDU_BF16_NS avx512emu
#include "../gemm_bf16_avx512bf16.cpp"
#undef EDU_BF16_NS
#define EDU_BF16_NS amxemu
#include "../gemm_bf16_amx.cpp"
#undef EDU_BF16_NS

using namespace edu;
using namespace edu::cpu;

// Runs an emulated path the way gemm_bf16 dispatches a real one: pack A (avx512's packer; rows padded to
// mAlign with zeros), then the path's gemm entry.
static void run_emulated(bool amx, const float* a, int m, int k, const PackedBf16& w, const float* bias, float* c,
                         Epilogue ep, ThreadPool* pool) {
  const int mAlign = amx ? 32 : 1;
  const size_t mpad = (static_cast<size_t>(m) + mAlign - 1) / mAlign * mAlign;
  uint16_t* ap = static_cast<uint16_t*>(guard::alloc(mpad * w.kpad * 2));
  std::memset(ap, 0, mpad * w.kpad * 2);
  avx512emu::pack_a(a, k, m, k, w.kpad, ap);
  Bf16Call call{ap, w.kpad, w.base(), w.n, w.kpad, w.kc, w.panels, bias, c, static_cast<long>(w.n), m, ep,
                isa_kernels(Isa::Scalar).gelu};
  if (amx)
    amxemu::gemm_entry(call, pool);
  else
    avx512emu::gemm_entry(call, pool);
  guard::release(ap);
}

int main() {
  guard::page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::mt19937 rng(12345);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  // Tails and block edges of every path: m around the 14-row (avx512) and 32-row (amx) tiles, n around
  // 16-column panels and panel pairs, k around the 32-value padding and the 256-value K block.
  const int ms[] = {1, 3, 15, 32, 33, 57};
  const int ns[] = {1, 16, 17, 33, 100};
  const int ks[] = {1, 31, 32, 33, 256, 257, 300};
  const Epilogue eps[] = {Epilogue::None, Epilogue::Gelu, Epilogue::Tanh};
  ThreadPool pool3(3);
  const bool haveAvx2 = isa_supported(Isa::Avx2);
  long cases = 0, failures = 0;
  double worstAmx = 0;  // max |amx - scalar| / (4 sqrt(K) eps32 mag)
  int ci = 0;
  for (int m : ms)
    for (int n : ns)
      for (int k : ks) {
        ++ci;
        const bool withBias = ci % 2 == 0;
        const Epilogue ep = eps[ci % 3];
        ThreadPool* pool = ci % 4 == 0 ? nullptr : &pool3;
        std::vector<float> a(static_cast<size_t>(m) * k), w(static_cast<size_t>(n) * k), bias(n);
        for (float& x : a) x = nd(rng);
        for (float& x : w) x = 0.05f * nd(rng);
        for (float& x : bias) x = nd(rng);
        // A at the end of a guarded page too (pack_a must not read past it).
        float* ag = static_cast<float*>(guard::alloc(a.size() * 4));
        std::memcpy(ag, a.data(), a.size() * 4);
        const PackedBf16 pw = pack_weight_bf16(w.data(), n, k);
        const size_t cn = static_cast<size_t>(m) * n;
        float* ref = static_cast<float*>(guard::alloc(cn * 4));
        float* got = static_cast<float*>(guard::alloc(cn * 4));
        const float* b = withBias ? bias.data() : nullptr;
        Bf16Context sc{Bf16Isa::Scalar, pool, nullptr};
        gemm_bf16(sc, ag, k, pw, b, ref, n, m, ep);
        auto fail = [&](const char* path, size_t i, double x, double y) {
          if (failures < 20)
            std::printf("FAIL %s m=%d n=%d k=%d bias=%d ep=%d: c[%zu] = %.9g, scalar %.9g\n", path, m, n, k, withBias,
                        static_cast<int>(ep), i, x, y);
          ++failures;
        };
        if (haveAvx2) {
          // The avx2 path's GELU epilogue is its own vectorised erf (within 1e-7 of erff), so the
          // bit-for-bit comparison uses the shared epilogues only (none / tanh).
          const Epilogue ep2 = ep == Epilogue::Gelu ? Epilogue::None : ep;
          std::vector<float> ref2(cn);
          gemm_bf16(sc, ag, k, pw, b, ref2.data(), n, m, ep2);
          Bf16Context vc{Bf16Isa::Avx2, pool, nullptr};
          gemm_bf16(vc, ag, k, pw, b, got, n, m, ep2);
          for (size_t i = 0; i < cn; ++i)
            if (float_bits(got[i]) != float_bits(ref2[i])) { fail("avx2", i, got[i], ref2[i]); break; }
        }
        run_emulated(false, ag, m, k, pw, b, got, ep, pool);
        for (size_t i = 0; i < cn; ++i)
          if (float_bits(got[i]) != float_bits(ref[i])) { fail("avx512(emulated)", i, got[i], ref[i]); break; }
        // AMX: without the epilogue, compare the GEMM itself against a bound from |A||W|.
        run_emulated(true, ag, m, k, pw, b, got, Epilogue::None, pool);
        std::vector<float> plain(cn);
        gemm_bf16(sc, ag, k, pw, b, plain.data(), n, m, Epilogue::None);
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < n; ++j) {
            double mag = b ? std::fabs(b[j]) : 0.0;
            for (int p = 0; p < k; ++p)
              mag += std::fabs(round_to_bf16(a[static_cast<size_t>(i) * k + p]) * round_to_bf16(w[static_cast<size_t>(j) * k + p]));
            // Both sum the same K + 1 exact terms (bias included) in fp32, in different orders: each of
            // the K + 1 additions is off by at most u |partial sum| <= u mag, so the two differ by at most
            // (K + 1) eps32 mag (eps32 = 2u). The typical size is sqrt(K) times smaller; the worst ratio
            // to 4 sqrt(K + 1) eps32 mag is printed.
            const double eps32 = std::ldexp(1.0, -23);
            const double tol = (k + 1) * eps32 * mag + 1e-30;
            const double typical = 4.0 * std::sqrt(static_cast<double>(k) + 1) * eps32 * mag + 1e-30;
            const size_t idx = static_cast<size_t>(i) * n + j;
            const double err = std::fabs(static_cast<double>(got[idx]) - plain[idx]);
            worstAmx = std::max(worstAmx, err / typical);
            if (err > tol) { fail("amx(emulated)", idx, got[idx], plain[idx]); i = m; break; }
          }
        // and with an epilogue: the same tile path plus the shared epilogue code.
        if (ep != Epilogue::None) {
          if (ep == Epilogue::Gelu)
            for (int i = 0; i < m; ++i) isa_kernels(Isa::Scalar).gelu(got + static_cast<size_t>(i) * n, n);
          else
            epilogue_rows(ep, got, n, m, n);
          std::vector<float> viaEp(cn);
          run_emulated(true, ag, m, k, pw, b, viaEp.data(), ep, pool);
          for (size_t i = 0; i < cn; ++i)
            if (float_bits(viaEp[i]) != float_bits(got[i])) { fail("amx(emulated) epilogue", i, viaEp[i], got[i]); break; }
        }
        guard::release(ag);
        guard::release(ref);
        guard::release(got);
        ++cases;
      }
  std::printf("bf16 checks: %ld shape cases (m x n x k, bias, none/gelu/tanh, 1 and 3 threads), guard pages after every buffer\n", cases);
  std::printf("  avx2 (real)           vs scalar: %s\n", haveAvx2 ? "bit-identical required" : "skipped: no AVX2 here");
  std::printf("  avx512 (emulated VDPBF16PS) vs scalar: bit-identical required\n");
  std::printf("  amx (emulated tiles)  vs scalar: within (K+1) eps32 sum|a w|; worst error %.3f of 4 sqrt(K+1) eps32 sum|a w|\n", worstAmx);
  std::printf("%s (%ld failures)\n", failures ? "bf16 checks FAILED" : "bf16 checks OK", failures);
  return failures ? 1 : 0;
}
