// bf16 GEMM entry point: weight packing, A rounding / packing, run-time path selection and resolution
// (EDU_TRAIN_CPU_ISA), and the Linux AMX permission request. Plain baseline code: the ISA-specific
// kernels live in gemm_bf16_{scalar,avx2,avx512bf16,amx}.cpp.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "bf16_kernels.h"
#include "isa_kernels.h"

namespace edu {

const char* dtype_name(Dtype d) {
  switch (d) {
    case Dtype::Fp32: return "fp32";
    case Dtype::Bf16: return "bf16";
  }
  return "unknown";
}

Dtype parse_dtype(const std::string& s) {
  if (s == "fp32") return Dtype::Fp32;
  if (s == "bf16") return Dtype::Bf16;
  throw std::invalid_argument("dtype is '" + s + "', expected 'fp32' or 'bf16'");
}

namespace cpu {

void AlignedBytes::resize(size_t bytes) {
  if (bytes == 0) {
    ptr_.reset();
    n_ = 0;
    return;
  }
  const size_t rounded = ((bytes + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (p == nullptr) throw std::bad_alloc();
  ptr_.reset(p);
  n_ = bytes;
}

const char* bf16_isa_name(Bf16Isa isa) {
  switch (isa) {
    case Bf16Isa::Amx: return "amx";
    case Bf16Isa::Avx512: return "avx512";
    case Bf16Isa::Avx2: return "avx2";
    case Bf16Isa::Scalar: return "scalar";
  }
  return "unknown";
}

Isa bf16_helper_isa(Bf16Isa isa) {
  switch (isa) {
    case Bf16Isa::Amx:
    case Bf16Isa::Avx512: return Isa::Avx512;
    case Bf16Isa::Avx2: return Isa::Avx2;
    case Bf16Isa::Scalar: return Isa::Scalar;
  }
  return Isa::Scalar;
}

namespace {

// Linux: a process must ask for the AMX tile data state before its first tile instruction (else
// SIGILL); asked once per process, the answer kept. ARCH_GET/REQ_XCOMP_PERM and XFEATURE_XTILEDATA
// from <asm/prctl.h> / the kernel's xstate numbering, spelled out for older headers.
constexpr long kArchGetXcompPerm = 0x1022;
constexpr long kArchReqXcompPerm = 0x1023;
constexpr long kXfeatureXtiledata = 18;

struct AmxPermission {
  bool granted = false;
  std::string why;
};

AmxPermission request_amx_permission() {
  AmxPermission r;
#if defined(__linux__) && defined(SYS_arch_prctl)
  unsigned long mask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &mask) == 0 && (mask & (1ul << kXfeatureXtiledata))) {
    r.granted = true;
    return r;
  }
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
    r.why = std::string("Linux refused arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): ") + std::strerror(errno);
    return r;
  }
  mask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &mask) != 0 || !(mask & (1ul << kXfeatureXtiledata))) {
    r.why = "Linux did not grant the AMX tile data permission (ARCH_GET_XCOMP_PERM)";
    return r;
  }
  r.granted = true;
#else
  r.why = "AMX needs Linux (arch_prctl ARCH_REQ_XCOMP_PERM) in this build";
#endif
  return r;
}

const AmxPermission& amx_permission() {
  static const AmxPermission p = request_amx_permission();
  return p;
}

}  // namespace

bool bf16_isa_supported(Bf16Isa isa, std::string* why) {
  const CpuFeatures& f = cpu_features();
  auto no = [&](const std::string& reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
  switch (isa) {
    case Bf16Isa::Scalar: return true;
    case Bf16Isa::Avx2:
      return isa_supported(Isa::Avx2) ? true : no("no AVX2 + FMA (CPUID / XCR0)");
    case Bf16Isa::Avx512:
      if (!isa_supported(Isa::Avx512)) return no("no AVX-512 F/BW/VL/DQ enabled by the CPU and OS");
      return f.avx512bf16 ? true : no("no AVX512_BF16 (CPUID.(EAX=7,ECX=1):EAX[5])");
    case Bf16Isa::Amx:
      if (!(f.amxTile && f.amxBf16)) return no("no AMX-TILE + AMX-BF16 enabled by the CPU and OS (CPUID / XCR0)");
      if (!isa_supported(Isa::Avx512)) return no("AMX without AVX-512 F/BW/VL/DQ (needed around the tiles)");
      {
        const AmxPermission& p = amx_permission();
        if (!p.granted) return no(p.why);
      }
      return true;
  }
  return no("unknown path");
}

Bf16Isa best_bf16_isa() {
  for (Bf16Isa i : {Bf16Isa::Amx, Bf16Isa::Avx512, Bf16Isa::Avx2})
    if (bf16_isa_supported(i)) return i;
  return Bf16Isa::Scalar;
}

static std::string bf16_supported_list() {
  std::string s;
  for (Bf16Isa i : {Bf16Isa::Amx, Bf16Isa::Avx512, Bf16Isa::Avx2, Bf16Isa::Scalar}) {
    if (!bf16_isa_supported(i)) continue;
    if (!s.empty()) s += ", ";
    s += bf16_isa_name(i);
  }
  return s;
}

Bf16Isa resolve_bf16_isa(const std::string& requested) {
  std::string name = requested;
  std::string source = "isa option";
  if (name.empty() || name == "auto") {
    const char* env = std::getenv("EDU_TRAIN_CPU_ISA");
    if (env == nullptr || *env == '\0' || std::string(env) == "auto") return best_bf16_isa();
    name = env;
    source = "EDU_TRAIN_CPU_ISA";
  }
  Bf16Isa isa;
  if (name == "amx") isa = Bf16Isa::Amx;
  else if (name == "avx512") isa = Bf16Isa::Avx512;
  else if (name == "avx2") isa = Bf16Isa::Avx2;
  else if (name == "scalar") isa = Bf16Isa::Scalar;
  else
    throw std::invalid_argument(source + " is '" + name +
                                "', expected one of 'auto', 'amx', 'avx512', 'avx2', 'scalar'");
  std::string why;
  if (!bf16_isa_supported(isa, &why))
    throw std::runtime_error(source + " asks for the '" + name + "' bf16 code path, but this CPU/OS cannot run it (" +
                             why + "; bf16 paths supported here: " + bf16_supported_list() + ")");
  return isa;
}

static const Bf16Kernels& kernels_for(Bf16Isa isa) {
  switch (isa) {
    case Bf16Isa::Amx: return bf16_kernels_amx();
    case Bf16Isa::Avx512: return bf16_kernels_avx512();
    case Bf16Isa::Avx2: return bf16_kernels_avx2();
    case Bf16Isa::Scalar: return bf16_kernels_scalar();
  }
  throw std::invalid_argument("unknown bf16 code path");
}

PackedBf16 pack_weight_bf16(const float* w, int n, int k) {
  if (n <= 0 || k < 0) throw std::invalid_argument("pack_weight_bf16: bad shape");
  if (w == nullptr && k > 0) throw std::invalid_argument("pack_weight_bf16: no data");
  PackedBf16 p;
  p.n = n;
  p.k = k;
  p.kpad = (k + kBf16KAlign - 1) / kBf16KAlign * kBf16KAlign;
  p.kc = kBf16Kc;
  p.panels = (n + kBf16PanelCols - 1) / kBf16PanelCols;
  const size_t elems = static_cast<size_t>(p.panels) * kBf16PanelCols * static_cast<size_t>(p.kpad > 0 ? p.kpad : 1);
  p.data.resize(elems * sizeof(uint16_t));
  uint16_t* dst = static_cast<uint16_t*>(p.data.data());
  std::memset(dst, 0, elems * sizeof(uint16_t));
  for (int k0 = 0; k0 < p.kpad; k0 += p.kc) {
    const int len = (p.kpad - k0) < p.kc ? (p.kpad - k0) : p.kc;
    for (int pi = 0; pi < p.panels; ++pi) {
      uint16_t* panel = dst + static_cast<size_t>(k0) * p.panels * kBf16PanelCols +
                        static_cast<size_t>(pi) * len * kBf16PanelCols;
      for (int j = 0; j < kBf16PanelCols; ++j) {
        const int col = pi * kBf16PanelCols + j;
        if (col >= n) continue;  // zero padding
        const float* src = w + static_cast<size_t>(col) * k;
        for (int kk = 0; kk < len && k0 + kk < k; ++kk)
          panel[(kk / 2) * 2 * kBf16PanelCols + 2 * j + (kk & 1)] = float_to_bf16(src[k0 + kk]);
      }
    }
  }
  return p;
}

static size_t rows_padded(const Bf16Kernels& kern, int m) {
  return (static_cast<size_t>(m) + kern.mAlign - 1) / kern.mAlign * kern.mAlign;
}

size_t bf16_workspace_bytes(Bf16Isa isa, int m, int k) {
  const Bf16Kernels& kern = kernels_for(isa);
  const size_t kpad = (static_cast<size_t>(k) + kBf16KAlign - 1) / kBf16KAlign * kBf16KAlign;
  return rows_padded(kern, m) * kpad * (kern.aIsBf16 ? 2 : 4);
}

void gemm_bf16(const Bf16Context& ctx, const float* a, long lda, const PackedBf16& w, const float* bias, float* c,
               long ldc, int m, Epilogue epilogue) {
  if (m < 0) throw std::invalid_argument("gemm_bf16: m must be >= 0");
  if (m == 0) return;
  if (w.n <= 0 || w.panels != (w.n + kBf16PanelCols - 1) / kBf16PanelCols || w.kpad % kBf16KAlign != 0 ||
      w.kc != kBf16Kc || w.kpad < w.k)
    throw std::invalid_argument("gemm_bf16: the weight is not packed by pack_weight_bf16");
  if (c == nullptr || ldc < w.n) throw std::invalid_argument("gemm_bf16: bad output (null or ldc < n)");
  if (w.k > 0 && (a == nullptr || lda < w.k)) throw std::invalid_argument("gemm_bf16: bad A (null or lda < k)");
  std::string why;
  if (!bf16_isa_supported(ctx.isa, &why))
    throw std::runtime_error(std::string("gemm_bf16: the '") + bf16_isa_name(ctx.isa) + "' path cannot run here (" + why + ")");
  const Bf16Kernels& kern = kernels_for(ctx.isa);

  if (w.k == 0) {  // C = bias (+ epilogue)
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < w.n; ++j) c[static_cast<size_t>(i) * ldc + j] = bias ? bias[j] : 0.0f;
    if (epilogue != Epilogue::None) epilogue_rows(epilogue, c, ldc, m, w.n);
    return;
  }

  // Round and pack A once per call (O(m k) against the GEMM's O(m n k)), split over the pool by rows.
  const size_t mpad = rows_padded(kern, m);
  const size_t elemBytes = kern.aIsBf16 ? 2 : 4;
  const size_t rowBytes = static_cast<size_t>(w.kpad) * elemBytes;
  Bf16Workspace local;
  Bf16Workspace* ws = ctx.ws != nullptr ? ctx.ws : &local;
  char* apack = static_cast<char*>(ws->get(mpad * rowBytes));
  if (mpad > static_cast<size_t>(m)) std::memset(apack + static_cast<size_t>(m) * rowBytes, 0, (mpad - m) * rowBytes);
  const int chunks = ctx.pool != nullptr ? (m < 4 * ctx.pool->size() ? 1 : 4 * ctx.pool->size()) : 1;
  auto pack = [&](int i) {
    const int r0 = static_cast<int>(static_cast<long long>(m) * i / chunks);
    const int r1 = static_cast<int>(static_cast<long long>(m) * (i + 1) / chunks);
    if (r1 > r0)
      kern.pack_a(a + static_cast<size_t>(r0) * lda, lda, r1 - r0, w.k, w.kpad, apack + static_cast<size_t>(r0) * rowBytes);
  };
  if (ctx.pool != nullptr && chunks > 1)
    ctx.pool->run(chunks, pack);
  else
    pack(0);

  Bf16Call call{apack, w.kpad, w.base(), w.n, w.kpad, w.kc, w.panels, bias, c, ldc, m, epilogue,
                isa_kernels(bf16_helper_isa(ctx.isa)).gelu};
  kern.gemm(call, ctx.pool);
}

}  // namespace cpu
}  // namespace edu
