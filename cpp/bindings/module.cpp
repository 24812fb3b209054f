// neuropil._kernels: the compiled module. Only neuropil.functional imports it.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "neuropil/cpu.h"
#include "neuropil/gemm.h"
#include "neuropil/parallel.h"

namespace py = pybind11;

namespace neuropil {
namespace bind {
void register_gemm(py::module_& m);
void register_conv(py::module_& m);
void register_pool(py::module_& m);
void register_rnn(py::module_& m);
void register_elementwise(py::module_& m);
void register_optim(py::module_& m);
void register_tensor(py::module_& m);
void register_norm(py::module_& m);
void register_resample(py::module_& m);
}  // namespace bind
}  // namespace neuropil

using namespace neuropil;

PYBIND11_MODULE(_kernels, m) {
  m.doc() = "neuropil's compiled kernels (private; use neuropil.functional)";
  m.attr("__version__") = NEUROPIL_VERSION;

  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", [](int n) {
    if (n < 1)
      throw py::value_error("set_num_threads: n must be a positive integer, got " +
                            std::to_string(n));
    set_num_threads(n);
  }, py::arg("n"));

  m.def("parallel_team_size", [](int threads) {
    if (threads < 1)
      throw py::value_error("parallel_team_size: threads must be >= 1, got " +
                            std::to_string(threads));
    py::gil_scoped_release release;
    return parallel_team_size(threads);
  }, py::arg("threads"),
        "Threads a parallel region asking for `threads` gets now (a diagnostic for tests).");

  m.def("get_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("available_isas", [] {
    std::vector<std::string> out;
    for (Isa i : available_isas()) out.emplace_back(isa_name(i));
    return out;
  });
  m.def("set_isa", [](const std::string& name) {
    Isa isa;
    if (!parse_isa(name, &isa))
      throw py::value_error("set_isa: unknown ISA '" + name + "'; expected 'generic', 'avx2' or 'avx512'");
    if (!set_isa(isa))
      throw py::value_error("set_isa: ISA '" + name + "' is not available on this CPU/build");
  }, py::arg("name"));

  m.def("build_info", [] {
    const CpuInfo& c = cpu_info();
    py::dict d;
    d["version"] = NEUROPIL_VERSION;
    d["compiler"] = NEUROPIL_COMPILER;
    d["build_type"] = NEUROPIL_BUILD_TYPE;
    d["openmp"] = openmp_enabled();
    d["openmp_version"] = openmp_version();
    d["fork_handler"] = fork_handler_installed();
    d["forks_survived"] = forks_survived();
#ifdef NEUROPIL_HAVE_AVX2
    d["avx2_compiled"] = true;
#else
    d["avx2_compiled"] = false;
#endif
#ifdef NEUROPIL_HAVE_AVX512
    d["avx512_compiled"] = true;
#else
    d["avx512_compiled"] = false;
#endif
    d["cpu_vendor"] = c.vendor;
    d["cpu_avx2"] = c.avx2;
    d["cpu_fma"] = c.fma;
    d["cpu_avx512f"] = c.avx512f;
    d["l1d_bytes"] = c.l1d_bytes;
    d["l2_bytes"] = c.l2_bytes;
    d["l3_bytes"] = c.l3_bytes;
    for (int bytes : {4, 8}) {
      int mr, nr;
      index_t mc, kc, nc;
      gemm_blocking(bytes, &mr, &nr, &mc, &kc, &nc);
      d[bytes == 4 ? "gemm_blocking_f32" : "gemm_blocking_f64"] =
          py::dict(py::arg("mr") = mr, py::arg("nr") = nr, py::arg("mc") = mc,
                   py::arg("kc") = kc, py::arg("nc") = nc);
    }
    return d;
  });

  bind::register_gemm(m);
  bind::register_conv(m);
  bind::register_pool(m);
  bind::register_rnn(m);
  bind::register_elementwise(m);
  bind::register_optim(m);
  bind::register_tensor(m);
  bind::register_norm(m);
  bind::register_resample(m);
}
