// CPU feature detection and the run-time choice of kernel family (ISA).
//
// The ISA is chosen once, at first use: the best the CPU supports among those
// compiled in, unless the environment variable NEUROPIL_ISA names another
// ("generic" forces the portable kernels, "avx2" the AVX2+FMA ones; "avx512"
// is the default where the CPU and OS support AVX-512F). set_isa() changes
// it at run time (tests use this to compare paths in one process).
#pragma once
#include <string>
#include <vector>

namespace neuropil {

// Ordered: each family's CPUs also run the ones before it, so code may test
// active_isa() >= Isa::Avx2 to use its AVX2 kernels under AVX-512 too.
enum class Isa : int { Generic = 0, Avx2 = 1, Avx512 = 2 };

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
// Parses "generic" / "avx2" / "avx512"; returns false for unknown names.
bool parse_isa(const std::string& name, Isa* out);

// The calling thread's kernel family: the one pinned by an IsaScope on this
// thread if any, else the process-wide choice.
Isa active_isa();
// Returns false (and changes nothing) if the ISA is unavailable here.
bool set_isa(Isa isa);

// Pins the calling thread's kernel family for the object's lifetime, so that a
// kernel that consults active_isa() several times (a path chosen by vector
// width, then the kernels of that width) sees one answer even while another
// thread calls set_isa(). Nested scopes keep the outer pin; parallel_for and
// parallel_region pin their workers to the caller's family.
class IsaScope {
 public:
  IsaScope();                   // pins the current family (kept if already pinned)
  explicit IsaScope(Isa isa);   // pins `isa`
  ~IsaScope();
  IsaScope(const IsaScope&) = delete;
  IsaScope& operator=(const IsaScope&) = delete;

 private:
  int prev_;
};

}  // namespace neuropil
