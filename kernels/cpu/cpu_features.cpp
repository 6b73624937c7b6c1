// CPU feature detection (CPUID + XGETBV) and ISA-path resolution.
#include <cpuid.h>
#include <sched.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "edu_cpu.h"

namespace edu {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    case Isa::Scalar: return "scalar";
  }
  return "unknown";
}

int logical_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return 1;
}

namespace cpu {
namespace {

uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  f.logicalCpus = logical_cpus();
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1;
  const bool avx = (c >> 28) & 1;
  f.fma = (c >> 12) & 1;
  uint64_t xcr0 = 0;
  if (osxsave) xcr0 = read_xcr0();
  f.osAvx = osxsave && avx && ((xcr0 & 0x6) == 0x6);             // XMM | YMM state
  f.osAvx512 = f.osAvx && ((xcr0 & 0xE0) == 0xE0);                // opmask | ZMM_Hi256 | Hi16_ZMM
  f.osAmx = osxsave && ((xcr0 & 0x60000) == 0x60000);             // XTILECFG | XTILEDATA
  unsigned maxLeaf = __get_cpuid_max(0, nullptr);
  if (maxLeaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = (b >> 5) & 1;
    f.avx512f = (b >> 16) & 1;
    f.avx512dq = (b >> 17) & 1;
    f.avx512bw = (b >> 30) & 1;
    f.avx512vl = (b >> 31) & 1;
    f.amxBf16 = (d >> 22) & 1;
    f.amxTile = (d >> 24) & 1;
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512bf16 = (a >> 5) & 1;
  }
  // Report only what the OS lets us use.
  if (!f.osAvx) f.avx2 = f.fma = false;
  if (!f.osAvx512) f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512bf16 = false;
  if (!f.osAmx) f.amxTile = f.amxBf16 = false;
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return f.avx2 && f.fma;
    case Isa::Avx512: return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma;
  }
  return false;
}

Isa best_isa() {
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Scalar;
}

static std::string supported_list() {
  std::string s;
  for (Isa i : {Isa::Avx512, Isa::Avx2, Isa::Scalar}) {
    if (!isa_supported(i)) continue;
    if (!s.empty()) s += ", ";
    s += isa_name(i);
  }
  return s;
}

Isa resolve_isa(const std::string& requested) {
  std::string name = requested;
  std::string source = "isa option";
  if (name.empty() || name == "auto") {
    const char* env = std::getenv("EDU_TRAIN_CPU_ISA");
    if (env == nullptr || *env == '\0' || std::string(env) == "auto") return best_isa();
    name = env;
    source = "EDU_TRAIN_CPU_ISA";
  }
  Isa isa;
  if (name == "avx512") isa = Isa::Avx512;
  else if (name == "avx2") isa = Isa::Avx2;
  else if (name == "scalar") isa = Isa::Scalar;
  else if (name == "amx")
    throw std::invalid_argument(source + " is 'amx', which is a bf16-only code path (AMX-BF16 tiles): use it with "
                                "dtype bf16, or choose 'avx512', 'avx2' or 'scalar' for fp32");
  else
    throw std::invalid_argument(source + " is '" + name +
                                "', expected one of 'auto', 'avx512', 'avx2', 'scalar' ('amx' with dtype bf16)");
  if (!isa_supported(isa))
    throw std::runtime_error(source + " asks for the '" + name +
                             "' code path, but this CPU/OS does not support it (supported: " +
                             supported_list() + ")");
  return isa;
}

}  // namespace cpu
}  // namespace edu
