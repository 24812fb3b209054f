// Binding of gemm: validate, extract, release the GIL, call.
#include <string>
#include <vector>

#include "checks.h"
#include "neuropil/gemm.h"

namespace neuropil {
namespace bind {
namespace {

template <typename T>
void call_gemm(bool reference, Trans ta, Trans tb, index_t M, index_t N, index_t K, double alpha,
               const py::array& a, const py::array& b, double beta, py::array& out) {
  const T* A = static_cast<const T*>(a.data());
  const T* B = static_cast<const T*>(b.data());
  T* C = static_cast<T*>(out.mutable_data());
  const index_t lda = a.shape(1), ldb = b.shape(1), ldc = N;
  py::gil_scoped_release release;
  if (reference)
    gemm_reference(ta, tb, M, N, K, T(alpha), A, lda, B, ldb, T(beta), C, ldc);
  else
    gemm(ta, tb, M, N, K, T(alpha), A, lda, B, ldb, T(beta), C, ldc);
}

struct GemmArgs {
  Dtype dt;
  index_t M, N, K;
  Trans ta, tb;
};

GemmArgs check_gemm(const py::array& a, const py::array& b, const py::array& out, bool trans_a,
                    bool trans_b) {
  const char* fn = "gemm";
  const Dtype dt = float_dtype(a, fn, "a");
  float_dtype(b, fn, "b");
  require_same_dtype(a, "a", b, "b", fn);
  require_ndim(a, 2, fn, "a", trans_a ? "(K, M) (trans_a=True)" : "(M, K)");
  require_ndim(b, 2, fn, "b", trans_b ? "(N, K) (trans_b=True)" : "(K, N)");
  require_c_contiguous(a, fn, "a");
  require_c_contiguous(b, fn, "b");
  const index_t M = trans_a ? a.shape(1) : a.shape(0);
  const index_t Ka = trans_a ? a.shape(0) : a.shape(1);
  const index_t Kb = trans_b ? b.shape(1) : b.shape(0);
  const index_t N = trans_b ? b.shape(0) : b.shape(1);
  if (Ka != Kb)
    throw py::value_error(
        std::string(fn) + ": inner dimensions differ: op(a) is (M=" + std::to_string(M) +
        ", K=" + std::to_string(Ka) + ") but op(b) is (K=" + std::to_string(Kb) +
        ", N=" + std::to_string(N) + "); got a.shape=" + shape_str(a) +
        " with trans_a=" + (trans_a ? "True" : "False") + ", b.shape=" + shape_str(b) +
        " with trans_b=" + (trans_b ? "True" : "False"));
  if (!out.dtype().equal(a.dtype()))
    throw py::type_error(std::string(fn) + ": out must be " + dtype_str(a) +
                         " like a and b, got " + dtype_str(out));
  require_shape(out, {M, N}, fn, "out");
  require_writeable_out(out, fn, "out");
  require_no_overlap(out, "out", a, "a", fn);
  require_no_overlap(out, "out", b, "b", fn);
  return {dt, M, N, Ka, trans_a ? Trans::Yes : Trans::No, trans_b ? Trans::Yes : Trans::No};
}

void gemm_binding(const py::array& a, const py::array& b, py::array& out, bool trans_a,
                  bool trans_b, double alpha, double beta, bool reference) {
  const GemmArgs g = check_gemm(a, b, out, trans_a, trans_b);
  if (g.dt == Dtype::F32)
    call_gemm<float>(reference, g.ta, g.tb, g.M, g.N, g.K, alpha, a, b, beta, out);
  else
    call_gemm<double>(reference, g.ta, g.tb, g.M, g.N, g.K, alpha, a, b, beta, out);
}

// The pack-once API (gemm_pack_b + gemm_prepacked_b), as C++ callers such as
// the recurrent layers use it: b is packed once, then multiplied `repeats` times.
template <typename T>
void call_prepacked(const GemmArgs& g, const py::array& a, const py::array& b, double alpha,
                    double beta, py::array& out, int max_threads, int repeats) {
  const GemmPackedB layout = gemm_pack_b_layout(sizeof(T), g.K, g.N);
  std::vector<T> packed(static_cast<std::size_t>(layout.size) + 1);
  T* buf = packed.data() + 1;  // deliberately misaligned: the API needs no alignment
  const T* A = static_cast<const T*>(a.data());
  T* C = static_cast<T*>(out.mutable_data());
  py::gil_scoped_release release;
  gemm_pack_b(layout, g.tb, static_cast<const T*>(b.data()), b.shape(1), buf);
  for (int r = 0; r < repeats; ++r)
    gemm_prepacked_b(layout, g.ta, g.M, T(alpha), A, a.shape(1), buf, T(beta), C, g.N,
                     max_threads);
}

void prepacked_binding(const py::array& a, const py::array& b, py::array& out, bool trans_a,
                       bool trans_b, double alpha, double beta, int max_threads, int repeats) {
  const GemmArgs g = check_gemm(a, b, out, trans_a, trans_b);
  if (repeats < 1) throw py::value_error("gemm_prepacked: repeats must be >= 1");
  if (g.dt == Dtype::F32)
    call_prepacked<float>(g, a, b, alpha, beta, out, max_threads, repeats);
  else
    call_prepacked<double>(g, a, b, alpha, beta, out, max_threads, repeats);
}

}  // namespace

void register_gemm(py::module_& m) {
  m.def("gemm", &gemm_binding, py::arg("a"), py::arg("b"), py::arg("out"),
        py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0, py::arg("reference") = false,
        "out = alpha * op(a) @ op(b) + beta * out, in place. Arrays must be C-contiguous "
        "float32 or float64 of one dtype; out must not overlap a or b. "
        "reference=True runs the plain triple-loop twin.");
  m.def("gemm_prepacked", &prepacked_binding, py::arg("a"), py::arg("b"), py::arg("out"),
        py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0, py::arg("max_threads") = 1 << 20, py::arg("repeats") = 1,
        "gemm through the pack-once C++ API (b packed once, multiplied `repeats` times, "
        "each with the given beta); for tests and benchmarks.");
  m.def("fma_peak_gflops", [](double seconds, int threads) {
    py::gil_scoped_release release;
    return fma_peak_gflops(seconds, threads);
  }, py::arg("seconds") = 1.0, py::arg("threads") = 1,
        "float32 GFLOP/s of an FMA-bound loop on `threads` threads (benchmarks' peak).");
}

}  // namespace bind
}  // namespace neuropil
