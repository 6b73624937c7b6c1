// Self-checks of CPU-kernel code that the vitest suite cannot reach on an AVX2-only machine.
// Not part of the addon; build and run with
//   cmake --build build --target edu_kernels_check && ./build/edu_kernels_check
//  1. The shared GEMM driver with the AVX-512 path's exact tile and blocking (14 x 32, kc 256,
//     mc 112, nc 512), over an emulated 16-lane vector, against a float64 reference (incl. the
//     64-byte alignment the aligned B loads need, transA, tails, 1 and 3 threads, GELU epilogue).
//  2. The AVX2 vectorised erf against glibc erff on every float in [-4.5, 4.5] (needs AVX2+FMA).
//  3. The AVX2 softmax exp (exp8_nonpos) against double exp on every 7th float in [-87.3, 0].
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <vector>
#include "isa_kernels.h"

#include "../gemm_avx2.cpp"  // the AVX2 TU itself, for erf8 (this target is built with -mavx2 -mfma)
namespace edu { namespace cpu { namespace emu {
struct Emu16 {
  struct reg { float v[16]; };
  static constexpr int W = 16;
  static reg zero() { reg r; for (float& x : r.v) x = 0; return r; }
  static reg load(const float* p) { if (reinterpret_cast<uintptr_t>(p) % 64) { std::printf("MISALIGNED aligned load\n"); std::abort(); } return loadu(p); }
  static reg loadu(const float* p) { reg r; std::memcpy(r.v, p, 64); return r; }
  static void storeu(float* p, reg r) { std::memcpy(p, r.v, 64); }
  static reg bcast(const float* p) { reg r; for (float& x : r.v) x = *p; return r; }
  static reg fma(reg a, reg b, reg c) { for (int i = 0; i < 16; i++) c.v[i] = std::fma(a.v[i], b.v[i], c.v[i]); return c; }
  static reg add(reg a, reg b) { for (int i = 0; i < 16; i++) a.v[i] += b.v[i]; return a; }
  static float hsum(reg r) { float s = 0; for (float x : r.v) s += x; return s; }
};
void isa_gelu(float* x, int n) { for (int i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752440f)); }
#include "gemm_driver.inl"
using G = Gemm<Emu16, 14, 2>;
}}}
using namespace edu; using namespace edu::cpu;
static int check_erf8() {
  using namespace edu::cpu;
  double worst = 0; float at = 0; long n = 0;
  alignas(32) float in[8], out[8];
  uint32_t lo, hi; float f0 = 0.0f, f1 = 4.5f; std::memcpy(&lo, &f0, 4); std::memcpy(&hi, &f1, 4);
  int fill = 0;
  for (uint64_t u = lo; u <= hi; ++u) {
    uint32_t b = (uint32_t)u; float z; std::memcpy(&z, &b, 4);
    for (int s = 0; s < 2; ++s) {
      in[fill++] = s ? -z : z;
      if (fill == 8) {
        _mm256_store_ps(out, erf8(_mm256_load_ps(in)));
        for (int i = 0; i < 8; ++i) {
          const double d = std::fabs((double)out[i] - (double)std::erf(in[i]));
          if (d > worst) { worst = d; at = in[i]; }
          ++n;
        }
        fill = 0;
      }
    }
  }
  std::printf("erf8: %ld floats in [-4.5, 4.5], max |erf8 - erff| = %.3e at %.9g (limit 1e-7)\n", n, worst, at);
  return worst < 1e-7 ? 0 : 1;
}

static int check_exp8() {
  using namespace edu::cpu;
  double worst = 0; float at = 0; long n = 0;
  alignas(32) float in[8], out[8];
  uint32_t lo, hi; float f1 = 87.3f; std::memcpy(&lo, &f1, 4); hi = 0;  // bit patterns of -0 .. -87.3 (sign dropped)
  int fill = 0;
  for (uint64_t u = hi; u <= lo; u += 7) {
    uint32_t b = (uint32_t)u | 0x80000000u; float z; std::memcpy(&z, &b, 4);
    in[fill++] = z;
    if (fill == 8) {
      _mm256_store_ps(out, exp8_nonpos(_mm256_load_ps(in)));
      for (int i = 0; i < 8; ++i) {
        const double ref = std::exp((double)in[i]);
        const double d = std::fabs((double)out[i] - ref) / ref;
        if (d > worst) { worst = d; at = in[i]; }
        ++n;
      }
      fill = 0;
    }
  }
  std::printf("exp8: %ld floats in [-87.3, 0], max relative error %.3e at %.9g (limit 3e-7)\n", n, worst, at);
  return worst < 3e-7 ? 0 : 1;
}

int main() {
  std::mt19937 gen(1); std::normal_distribution<float> nd;
  GemmBlocking bl{14, 32, 256, 112, 512};
  int fails = 0;
  int shapes[][3] = {{1,1,1},{7,13,5},{33,65,97},{14,32,256},{15,33,257},{200,1030,300},{113,513,600},{130,40,1000}};
  for (auto& s : shapes) for (int transA = 0; transA < 2; ++transA) for (int threads : {1, 3}) {
    int M = s[0], N = s[1], K = s[2];
    std::vector<float> a(M*K), w(N*K), bias(N), c(M*N);
    for (auto& x : a) x = nd(gen);
    for (auto& x : w) x = nd(gen);
    for (auto& x : bias) x = nd(gen);
    // The real packing for the AVX-512 tile (isa_kernels_avx512() only returns a constant table).
    PackedMatrix p = pack_weight(Isa::Avx512, w.data(), N, K);
    if (p.nr != 32 || p.kc != 256) { std::printf("unexpected AVX-512 blocking\n"); return 1; }
    ThreadPool pool(threads);
    GemmCall call{a.data(), transA ? (long)M : (long)K, (bool)transA, &p, bias.data(), c.data(), (long)N, M, Epilogue::Gelu};
    emu::G::gemm(call, &pool, bl);
    double worst = 0;
    for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) {
      double sum = bias[j], mag = std::fabs(bias[j]);
      for (int k = 0; k < K; k++) { double av = transA ? a[(size_t)k*M+i] : a[(size_t)i*K+k]; sum += av * w[(size_t)j*K+k]; mag += std::fabs(av * w[(size_t)j*K+k]); }
      double ref = 0.5 * sum * (1 + std::erf(sum / std::sqrt(2.0)));
      double err = std::fabs(c[(size_t)i*N+j] - ref) / (4 * std::sqrt((double)K) * 1.2e-7 * mag + 1e-6);
      worst = std::max(worst, err);
    }
    if (worst > 1) { fails++; std::printf("FAIL %dx%dx%d transA=%d threads=%d ratio %.2f\n", M, N, K, transA, threads, worst); }
  }
  // gemm_nn and dot/axpy
  for (int M : {1, 4, 5, 32}) for (int N : {16, 32, 48, 128}) for (int K : {1, 7, 64, 100}) {
    std::vector<float> a(M*K), b(K*N), c(M*N); for (auto& x : a) x = nd(gen); for (auto& x : b) x = nd(gen);
    emu::G::gemm_nn(M, N, K, a.data(), K, b.data(), N, c.data(), N);
    for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) { double s = 0; for (int k = 0; k < K; k++) s += (double)a[i*K+k]*b[k*N+j];
      if (std::fabs(s - c[i*N+j]) > 1e-4 * std::sqrt(K) + 1e-5) { fails++; std::printf("FAIL nn %d %d %d\n", M, N, K); i = M; break; } }
  }
  for (int n : {1, 15, 16, 17, 33, 64, 100}) { std::vector<float> x(n), y(n); for (auto& v : x) v = nd(gen); for (auto& v : y) v = nd(gen);
    double s = 0; for (int i = 0; i < n; i++) s += (double)x[i]*y[i]; if (std::fabs(emu::G::dot(x.data(), y.data(), n) - s) > 1e-4) { fails++; std::printf("FAIL dot %d\n", n); } }
  std::printf(fails ? "%d FAILURES\n" : "emulated AVX-512 driver: all OK\n", fails);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) fails += check_erf8() + check_exp8();
  return fails != 0;
}
