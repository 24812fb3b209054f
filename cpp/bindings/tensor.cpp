// Bindings of the tensor family (add, concat, split): validate, extract, release
// the GIL, call (STYLE rule 6).
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "checks.h"
#include "neuropil/tensor.h"

namespace neuropil {
namespace bind {
namespace {

std::string dims_str(const std::vector<py::ssize_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

std::vector<py::ssize_t> dims(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

void add_binding(const py::array& a, const py::array& b, py::array out) {
  const char* fn = "add";
  Dtype dt = float_dtype(a, fn, "a");
  require_same_dtype(a, "a", b, "b", fn);
  if (dims(a) != dims(b))
    throw py::value_error(std::string(fn) + ": a has shape " + shape_str(a) + " but b has " +
                          shape_str(b) + "; they must have the same shape (no broadcasting)");
  require_c_contiguous(a, fn, "a");
  require_c_contiguous(b, fn, "b");
  require_same_dtype(a, "a", out, "out", fn);
  require_shape(out, dims(a), fn, "out");
  require_writeable_out(out, fn, "out");
  if (out.data() != a.data() && overlaps(out, a))
    throw py::value_error(std::string(fn) + ": out partly overlaps a; pass a separate array or a itself");
  if (out.data() != b.data() && overlaps(out, b))
    throw py::value_error(std::string(fn) + ": out partly overlaps b; pass a separate array or b itself");
  const index_t n = a.size();
  py::gil_scoped_release release;
  if (dt == Dtype::F32)
    add(n, static_cast<const float*>(a.data()), static_cast<const float*>(b.data()),
        static_cast<float*>(out.mutable_data()));
  else
    add(n, static_cast<const double*>(a.data()), static_cast<const double*>(b.data()),
        static_cast<double*>(out.mutable_data()));
}

// Checks shared by concat and split: `parts` are the pieces along `axis`, `whole`
// the concatenation. Returns the normalised axis.
int check_parts(const char* fn, const char* parts_name, const std::vector<py::array>& parts,
                const py::array& whole, const char* whole_name, int axis) {
  if (parts.empty())
    throw py::value_error(std::string(fn) + ": " + parts_name + " must hold at least one array");
  const py::array& first = parts[0];
  float_dtype(first, fn, parts_name);
  const int nd = static_cast<int>(first.ndim());
  if (nd < 1)
    throw py::value_error(std::string(fn) + ": arrays must have at least 1 dimension");
  if (axis < -nd || axis >= nd)
    throw py::value_error(std::string(fn) + ": axis " + std::to_string(axis) +
                          " is out of range for arrays of rank " + std::to_string(nd));
  if (axis < 0) axis += nd;
  std::vector<py::ssize_t> want = dims(first);
  py::ssize_t total = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const py::array& p = parts[i];
    const std::string name = std::string(parts_name) + "[" + std::to_string(i) + "]";
    if (!p.dtype().equal(first.dtype()))
      throw py::type_error(std::string(fn) + ": " + name + " is " + dtype_str(p) + " but " +
                           parts_name + "[0] is " + dtype_str(first) + "; they must share one dtype");
    std::vector<py::ssize_t> got = dims(p);
    bool ok = static_cast<int>(got.size()) == nd;
    for (int d = 0; ok && d < nd; ++d) ok = d == axis || got[d] == want[d];
    if (!ok)
      throw py::value_error(std::string(fn) + ": " + name + " has shape " + shape_str(p) +
                            " but " + parts_name + "[0] has " + shape_str(first) +
                            "; they must agree in every dimension except axis " +
                            std::to_string(axis));
    require_c_contiguous(p, fn, name.c_str());
    total += got[axis];
  }
  want[axis] = total;
  if (!whole.dtype().equal(first.dtype()))
    throw py::type_error(std::string(fn) + ": " + whole_name + " must be " + dtype_str(first) +
                         ", got " + dtype_str(whole));
  if (dims(whole) != want)
    throw py::value_error(std::string(fn) + ": " + whole_name + " must have shape " +
                          dims_str(want) + ", got " + shape_str(whole));
  return axis;
}

// (outer, inner) of a C-contiguous array around `axis`.
std::pair<index_t, index_t> outer_inner(const py::array& a, int axis) {
  index_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= a.shape(d);
  for (int d = axis + 1; d < a.ndim(); ++d) inner *= a.shape(d);
  return {outer, inner};
}

void concat_binding(const std::vector<py::array>& inputs, py::array out, int axis) {
  const char* fn = "concat";
  axis = check_parts(fn, "inputs", inputs, out, "out", axis);
  require_writeable_out(out, fn, "out");
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (overlaps(out, inputs[i]))
      throw py::value_error(std::string(fn) + ": out overlaps inputs[" + std::to_string(i) +
                            "] in memory; pass a separate output array");
  auto [outer, inner] = outer_inner(out, axis);
  const index_t elem = out.itemsize();
  const index_t row = out.shape(axis) * inner;
  std::vector<std::pair<const void*, index_t>> parts;
  for (const auto& p : inputs) parts.emplace_back(p.data(), p.shape(axis) * inner);
  void* dst = out.mutable_data();
  py::gil_scoped_release release;
  index_t off = 0;
  for (auto [src, len] : parts) {
    copy_blocks(outer, len, src, len, 0, dst, row, off, elem);
    off += len;
  }
}

void split_binding(const py::array& src, std::vector<py::array> outs, int axis) {
  const char* fn = "split";
  axis = check_parts(fn, "outs", outs, src, "src", axis);
  require_c_contiguous(src, fn, "src");
  for (std::size_t i = 0; i < outs.size(); ++i) {
    const std::string name = "outs[" + std::to_string(i) + "]";
    require_writeable_out(outs[i], fn, name.c_str());
    if (overlaps(outs[i], src))
      throw py::value_error(std::string(fn) + ": " + name + " overlaps src in memory");
    for (std::size_t j = 0; j < i; ++j)
      if (overlaps(outs[i], outs[j]))
        throw py::value_error(std::string(fn) + ": " + name + " overlaps outs[" +
                              std::to_string(j) + "] in memory");
  }
  auto [outer, inner] = outer_inner(src, axis);
  const index_t elem = src.itemsize();
  const index_t row = src.shape(axis) * inner;
  std::vector<std::pair<void*, index_t>> parts;
  for (auto& p : outs) parts.emplace_back(p.mutable_data(), p.shape(axis) * inner);
  const void* s = src.data();
  py::gil_scoped_release release;
  index_t off = 0;
  for (auto [dst, len] : parts) {
    copy_blocks(outer, len, s, row, off, dst, len, 0, elem);
    off += len;
  }
}

}  // namespace

void register_tensor(py::module_& m) {
  m.def("add", &add_binding, py::arg("a"), py::arg("b"), py::arg("out"),
        "out = a + b elementwise (same shape and dtype; out may be a or b)");
  m.def("concat", &concat_binding, py::arg("inputs"), py::arg("out"), py::arg("axis"),
        "Concatenate C-contiguous arrays along axis into out");
  m.def("split", &split_binding, py::arg("src"), py::arg("outs"), py::arg("axis"),
        "Copy consecutive pieces of src along axis into outs (the adjoint of concat)");
}

}  // namespace bind
}  // namespace neuropil
