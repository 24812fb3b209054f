// Argument helpers shared by the elementwise and loss bindings (STYLE rule 6).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "checks.h"
#include "neuropil/common.h"

namespace neuropil {
namespace bind {
namespace elementwise_args {

// An input: float32/float64, C-contiguous.
inline Dtype float_input(const py::array& a, const char* fn, const char* name) {
  Dtype dt = float_dtype(a, fn, name);
  require_c_contiguous(a, fn, name);
  return dt;
}

// A second input with the dtype and shape of `ref`.
inline void input_like(const py::array& a, const char* name, const py::array& ref, const char* ref_name,
                const char* fn) {
  float_dtype(a, fn, name);
  require_same_dtype(ref, ref_name, a, name, fn);
  std::vector<py::ssize_t> shape(ref.shape(), ref.shape() + ref.ndim());
  require_shape(a, shape, fn, name);
  require_c_contiguous(a, fn, name);
}

// An output with the dtype and shape of `ref`, writeable and C-contiguous.
inline void out_like(const py::array& out, const char* name, const py::array& ref, const char* ref_name,
              const char* fn) {
  if (!out.dtype().equal(ref.dtype()))
    throw py::type_error(std::string(fn) + ": " + name + " must be " + dtype_str(ref) + " like " +
                         ref_name + ", got " + dtype_str(out));
  std::vector<py::ssize_t> shape(ref.shape(), ref.shape() + ref.ndim());
  require_shape(out, shape, fn, name);
  require_writeable_out(out, fn, name);
}

// out may be exactly `in` (same buffer, same shape: in place) but must not partly overlap it.
inline void same_or_disjoint(const py::array& out, const char* out_name, const py::array& in,
                      const char* in_name, const char* fn) {
  if (out.data() == in.data() && out.nbytes() == in.nbytes()) return;
  require_no_overlap(out, out_name, in, in_name, fn);
}

// (rows, last-axis length) of an array of rank >= 1.
inline std::pair<index_t, index_t> rows_cols(const py::array& a, const char* fn, const char* name) {
  if (a.ndim() < 1)
    throw py::value_error(std::string(fn) + ": " + name +
                          " must have at least 1 dimension (..., C), got a 0-d array");
  const index_t C = a.shape(a.ndim() - 1);
  index_t N = 1;
  for (py::ssize_t i = 0; i + 1 < a.ndim(); ++i) N *= a.shape(i);
  return {N, C};
}

template <typename T>
inline const T* cptr(const py::array& a) { return static_cast<const T*>(a.data()); }
template <typename T>
inline T* mptr(py::array& a) { return static_cast<T*>(a.mutable_data()); }
// Dispatch on dtype: f(float{}) or f(double{}).
template <typename F>
auto by_dtype(Dtype dt, F&& f) {
  if (dt == Dtype::F32) return f(float{});
  return f(double{});
}

// Optional array argument: None or a py::array (never converted silently).
inline py::array as_array_arg(const py::object& o, const char* fn, const char* name) {
  if (!py::isinstance<py::array>(o))
    throw py::type_error(std::string(fn) + ": " + name + " must be a numpy.ndarray or None, got " +
                         py::str(py::type::of(o).attr("__name__")).cast<std::string>());
  return o.cast<py::array>();
}

}  // namespace elementwise_args
}  // namespace bind
}  // namespace neuropil
