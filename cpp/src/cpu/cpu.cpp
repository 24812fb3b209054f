// CPU detection and the active-ISA switch. Built without ISA flags.
#include "neuropil/cpu.h"

#include <atomic>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define NEUROPIL_X86 1
#endif

namespace neuropil {
namespace {

#ifdef NEUROPIL_X86
unsigned long long read_xcr0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

long sysconf_or_zero(int name) {
  long v = sysconf(name);
  return v > 0 ? v : 0;
}

CpuInfo detect() {
  CpuInfo info;
#ifdef NEUROPIL_X86
  unsigned int a, b, c, d;
  if (__get_cpuid(0, &a, &b, &c, &d)) {
    char vendor[13];
    reinterpret_cast<unsigned int*>(vendor)[0] = b;
    reinterpret_cast<unsigned int*>(vendor)[1] = d;
    reinterpret_cast<unsigned int*>(vendor)[2] = c;
    vendor[12] = 0;
    info.vendor = vendor;
    unsigned max_leaf = a;
    bool osxsave = false, fma = false, avx = false;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
      fma = (c >> 12) & 1;
      osxsave = (c >> 27) & 1;
      avx = (c >> 28) & 1;
    }
    // The OS must save YMM (and for AVX-512, ZMM/opmask) state.
    unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    bool ymm_ok = (xcr0 & 0x6) == 0x6;
    bool zmm_ok = (xcr0 & 0xE6) == 0xE6;
    if (max_leaf >= 7 && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
      info.avx2 = avx && ymm_ok && ((b >> 5) & 1);
      info.avx512f = zmm_ok && ((b >> 16) & 1);
    }
    info.fma = fma && ymm_ok;
  }
#endif
#ifdef _SC_LEVEL1_DCACHE_SIZE
  info.l1d_bytes = sysconf_or_zero(_SC_LEVEL1_DCACHE_SIZE);
  info.l2_bytes = sysconf_or_zero(_SC_LEVEL2_CACHE_SIZE);
  info.l3_bytes = sysconf_or_zero(_SC_LEVEL3_CACHE_SIZE);
#endif
  return info;
}

Isa best_isa() {
#ifdef NEUROPIL_HAVE_AVX2
  const CpuInfo& c = cpu_info();
#ifdef NEUROPIL_HAVE_AVX512
  if (c.avx2 && c.fma && c.avx512f) return Isa::Avx512;
#endif
  if (c.avx2 && c.fma) return Isa::Avx2;
#endif
  return Isa::Generic;
}

std::atomic<int>& active() {
  static std::atomic<int> isa{static_cast<int>(best_isa())};
  return isa;
}

}  // namespace

const CpuInfo& cpu_info() {
  static const CpuInfo info = detect();
  return info;
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out{Isa::Generic};
  if (best_isa() >= Isa::Avx2) out.push_back(Isa::Avx2);
  if (best_isa() >= Isa::Avx512) out.push_back(Isa::Avx512);
  return out;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Generic: return "generic";
  }
  return "generic";
}

bool parse_isa(const std::string& name, Isa* out) {
  if (name == "generic") { *out = Isa::Generic; return true; }
  if (name == "avx2") { *out = Isa::Avx2; return true; }
  if (name == "avx512") { *out = Isa::Avx512; return true; }
  return false;
}

namespace {
thread_local int t_pinned = -1;  // -1: this thread follows the process-wide choice
}  // namespace

Isa active_isa() {
  const int pinned = t_pinned;
  return static_cast<Isa>(pinned >= 0 ? pinned : active().load(std::memory_order_relaxed));
}

IsaScope::IsaScope() : prev_(t_pinned) {
  if (prev_ < 0) t_pinned = active().load(std::memory_order_relaxed);
}
IsaScope::IsaScope(Isa isa) : prev_(t_pinned) { t_pinned = static_cast<int>(isa); }
IsaScope::~IsaScope() { t_pinned = prev_; }

bool set_isa(Isa isa) {
  for (Isa a : available_isas()) {
    if (a == isa) {
      active().store(static_cast<int>(isa), std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

}  // namespace neuropil
