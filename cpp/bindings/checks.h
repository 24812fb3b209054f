// Argument checks shared by the bindings (STYLE rule 6). Every failure raises
// TypeError (wrong type/dtype) or ValueError (shape, rank, layout, aliasing)
// with a message naming the function, the argument and expected vs received.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

namespace neuropil {
namespace bind {

namespace py = pybind11;

enum class Dtype { F32, F64 };

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

inline std::string dtype_str(const py::array& a) {
  return py::str(a.dtype()).cast<std::string>();
}

inline Dtype float_dtype(const py::array& a, const char* fn, const char* name) {
  if (a.dtype().equal(py::dtype::of<float>())) return Dtype::F32;
  if (a.dtype().equal(py::dtype::of<double>())) return Dtype::F64;
  throw py::type_error(std::string(fn) + ": " + name + " must be float32 or float64, got " +
                       dtype_str(a));
}

inline void require_same_dtype(const py::array& a, const char* a_name, const py::array& b,
                               const char* b_name, const char* fn) {
  if (!a.dtype().equal(b.dtype()))
    throw py::type_error(std::string(fn) + ": " + a_name + " is " + dtype_str(a) + " but " +
                         b_name + " is " + dtype_str(b) +
                         "; they must share one dtype (cast one with .astype())");
}

inline void require_ndim(const py::array& a, py::ssize_t ndim, const char* fn, const char* name,
                         const char* expected) {
  if (a.ndim() != ndim)
    throw py::value_error(std::string(fn) + ": " + name + " must be " + std::to_string(ndim) +
                          "-D with shape " + expected + ", got shape " + shape_str(a));
}

inline void require_c_contiguous(const py::array& a, const char* fn, const char* name) {
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(fn) + ": " + name +
                          " must be C-contiguous (use numpy.ascontiguousarray)");
}

inline void require_writeable_out(const py::array& out, const char* fn, const char* name) {
  if (!out.writeable())
    throw py::value_error(std::string(fn) + ": " + name +
                          " is read-only; pass a writeable array");
  if (!(out.flags() & py::array::c_style))
    throw py::value_error(std::string(fn) + ": " + name +
                          " must be C-contiguous, since it is written in place");
}

inline void require_shape(const py::array& a, const std::vector<py::ssize_t>& shape,
                          const char* fn, const char* name) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (std::size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok) {
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
      if (i) s += ", ";
      s += std::to_string(shape[i]);
    }
    if (shape.size() == 1) s += ",";
    s += ")";
    throw py::value_error(std::string(fn) + ": " + name + " must have shape " + s + ", got " +
                          shape_str(a));
  }
}

// Byte ranges of two arrays overlap (conservative: bounds of the buffers).
inline bool overlaps(const py::array& a, const py::array& b) {
  if (a.nbytes() == 0 || b.nbytes() == 0) return false;
  auto lo_hi = [](const py::array& x) {
    const char* p = static_cast<const char*>(x.data());
    const char* lo = p;
    const char* hi = p + x.itemsize();
    for (py::ssize_t i = 0; i < x.ndim(); ++i) {
      py::ssize_t extent = (x.shape(i) - 1) * x.strides(i);
      if (extent < 0) lo += extent; else hi += extent;
    }
    return std::make_pair(lo, hi);
  };
  auto ra = lo_hi(a), rb = lo_hi(b);
  return ra.first < rb.second && rb.first < ra.second;
}

inline void require_no_overlap(const py::array& out, const char* out_name, const py::array& in,
                               const char* in_name, const char* fn) {
  if (overlaps(out, in))
    throw py::value_error(std::string(fn) + ": " + out_name + " overlaps " + in_name +
                          " in memory; pass a separate output array");
}

}  // namespace bind
}  // namespace neuropil
