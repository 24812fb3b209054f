// CPU feature detection and the run-time choice of kernel family (ISA).
//
// The ISA is chosen once, at first use: the best the CPU supports among those
// compiled in, unless the environment variable NEUROPIL_ISA names another
// ("generic" forces the portable kernels; "avx2" asks for AVX2+FMA and falls
// back to generic with a warning flag if the CPU lacks it). set_isa() changes
// it at run time (tests use this to compare paths in one process).
#pragma once
#include <string>
#include <vector>

namespace neuropil {

enum class Isa : int { Generic = 0, Avx2 = 1 };

struct CpuInfo {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  std::string vendor;
  long l1d_bytes = 0;  // per core; 0 when unknown
  long l2_bytes = 0;   // per core; 0 when unknown
  long l3_bytes = 0;   // total;    0 when unknown
};

const CpuInfo& cpu_info();

// Kernel families this build contains and this CPU can run.
std::vector<Isa> available_isas();
const char* isa_name(Isa isa);
// Parses "generic" / "avx2"; returns false for unknown names.
bool parse_isa(const std::string& name, Isa* out);

Isa active_isa();
// Returns false (and changes nothing) if the ISA is unavailable here.
bool set_isa(Isa isa);

}  // namespace neuropil
