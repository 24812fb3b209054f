// Bindings of max/avg pooling: validate, extract, release the GIL, call.
#include <string>

#include "checks.h"
#include "neuropil/pool.h"

namespace neuropil {
namespace bind {
namespace {

using Pair = std::pair<index_t, index_t>;

std::string pair_str(Pair p) {
  return "(" + std::to_string(p.first) + ", " + std::to_string(p.second) + ")";
}

PoolGeom make_geom(const char* fn, const py::array& x, Pair kernel, Pair stride, Pair padding,
                   bool ceil_mode) {
  require_ndim(x, 4, fn, "x", "(N, C, H, W)");
  if (kernel.first < 1 || kernel.second < 1)
    throw py::value_error(std::string(fn) + ": kernel_size must be positive, got " +
                          pair_str(kernel));
  if (stride.first < 1 || stride.second < 1)
    throw py::value_error(std::string(fn) + ": stride must be positive, got " + pair_str(stride));
  if (padding.first < 0 || padding.second < 0 || 2 * padding.first > kernel.first ||
      2 * padding.second > kernel.second)
    throw py::value_error(std::string(fn) + ": padding must be >= 0 and at most half the "
                          "kernel size " + pair_str(kernel) + ", got " + pair_str(padding));
  const index_t big = index_t(1) << 40;
  if (kernel.first > big || kernel.second > big || stride.first > big || stride.second > big)
    throw py::value_error(std::string(fn) + ": absurd kernel_size or stride");
  // An empty image (H or W = 0) would leave windows made only of padding,
  // whose max or mean does not exist.
  if (x.shape(2) < 1 || x.shape(3) < 1)
    throw py::value_error(std::string(fn) + ": x " + shape_str(x) + " has an empty image "
                          "(H and W must be >= 1)");
  PoolGeom g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), kernel.first, kernel.second,
             stride.first, stride.second, padding.first, padding.second};
  g.ceil_mode = ceil_mode;
  if (g.H + 2 * g.PH < g.KH || g.W + 2 * g.PW < g.KW)
    throw py::value_error(std::string(fn) + ": kernel_size " + pair_str(kernel) +
                          " is larger than the padded input " +
                          pair_str({g.H + 2 * g.PH, g.W + 2 * g.PW}) + " of x " + shape_str(x));
  return g;
}

void check_out(py::array& out, const py::array& ref, const std::vector<py::ssize_t>& shape,
               const char* fn, const char* name) {
  if (!out.dtype().equal(ref.dtype()))
    throw py::type_error(std::string(fn) + ": " + name + " must be " + dtype_str(ref) +
                         ", got " + dtype_str(out));
  require_shape(out, shape, fn, name);
  require_writeable_out(out, fn, name);
  require_no_overlap(out, name, ref, "the input", fn);
}

void check_idx(const py::array& idx, const std::vector<py::ssize_t>& shape, const char* fn) {
  if (!idx.dtype().equal(py::dtype::of<std::int64_t>()))
    throw py::type_error(std::string(fn) + ": indices must be int64, got " + dtype_str(idx));
  require_shape(idx, shape, fn, "indices");
  require_c_contiguous(idx, fn, "indices");
}

void max_fwd_binding(const py::array& x, py::array& out, py::array& idx, Pair kernel,
                     Pair stride, Pair padding, bool ceil_mode) {
  const char* fn = "max_pool2d";
  const Dtype dt = float_dtype(x, fn, "x");
  PoolGeom g = make_geom(fn, x, kernel, stride, padding, ceil_mode);
  require_c_contiguous(x, fn, "x");
  check_out(out, x, {g.N, g.C, g.OH(), g.OW()}, fn, "out");
  check_idx(idx, {g.N, g.C, g.OH(), g.OW()}, fn);
  require_writeable_out(idx, fn, "indices");
  require_no_overlap(idx, "indices", x, "x", fn);
  require_no_overlap(idx, "indices", out, "out", fn);
  auto* ip = static_cast<std::int64_t*>(idx.mutable_data());
  if (dt == Dtype::F32) {
    const float* xp = static_cast<const float*>(x.data());
    float* yp = static_cast<float*>(out.mutable_data());
    py::gil_scoped_release release;
    max_pool2d_forward(xp, g, yp, ip);
  } else {
    const double* xp = static_cast<const double*>(x.data());
    double* yp = static_cast<double*>(out.mutable_data());
    py::gil_scoped_release release;
    max_pool2d_forward(xp, g, yp, ip);
  }
}

void max_bwd_binding(const py::array& dy, const py::array& idx, py::array& dx, Pair kernel,
                     Pair stride, Pair padding, bool ceil_mode) {
  const char* fn = "max_pool2d_backward";
  const Dtype dt = float_dtype(dy, fn, "grad_out");
  require_ndim(dx, 4, fn, "grad_input", "(N, C, H, W)");
  PoolGeom g = make_geom(fn, dx, kernel, stride, padding, ceil_mode);
  require_c_contiguous(dy, fn, "grad_out");
  require_shape(dy, {g.N, g.C, g.OH(), g.OW()}, fn, "grad_out");
  check_idx(idx, {g.N, g.C, g.OH(), g.OW()}, fn);
  check_out(dx, dy, {g.N, g.C, g.H, g.W}, fn, "grad_input");
  require_no_overlap(dx, "grad_input", idx, "indices", fn);
  const auto* ip = static_cast<const std::int64_t*>(idx.data());
  index_t bad = 0;
  if (dt == Dtype::F32) {
    const float* gp = static_cast<const float*>(dy.data());
    float* dp = static_cast<float*>(dx.mutable_data());
    py::gil_scoped_release release;
    bad = max_pool2d_backward(gp, ip, g, dp);
  } else {
    const double* gp = static_cast<const double*>(dy.data());
    double* dp = static_cast<double*>(dx.mutable_data());
    py::gil_scoped_release release;
    bad = max_pool2d_backward(gp, ip, g, dp);
  }
  if (bad)
    throw py::value_error(std::string(fn) + ": " + std::to_string(bad) +
                          " indices point outside their window (indices must come from "
                          "max_pool2d with the same geometry); grad_input is not valid");
}

void avg_fwd_binding(const py::array& x, py::array& out, Pair kernel, Pair stride, Pair padding,
                     bool cip, bool ceil_mode) {
  const char* fn = "avg_pool2d";
  const Dtype dt = float_dtype(x, fn, "x");
  PoolGeom g = make_geom(fn, x, kernel, stride, padding, ceil_mode);
  require_c_contiguous(x, fn, "x");
  check_out(out, x, {g.N, g.C, g.OH(), g.OW()}, fn, "out");
  if (dt == Dtype::F32) {
    const float* xp = static_cast<const float*>(x.data());
    float* yp = static_cast<float*>(out.mutable_data());
    py::gil_scoped_release release;
    avg_pool2d_forward(xp, g, cip, yp);
  } else {
    const double* xp = static_cast<const double*>(x.data());
    double* yp = static_cast<double*>(out.mutable_data());
    py::gil_scoped_release release;
    avg_pool2d_forward(xp, g, cip, yp);
  }
}

void avg_bwd_binding(const py::array& dy, py::array& dx, Pair kernel, Pair stride, Pair padding,
                     bool cip, bool ceil_mode) {
  const char* fn = "avg_pool2d_backward";
  const Dtype dt = float_dtype(dy, fn, "grad_out");
  require_ndim(dx, 4, fn, "grad_input", "(N, C, H, W)");
  PoolGeom g = make_geom(fn, dx, kernel, stride, padding, ceil_mode);
  require_c_contiguous(dy, fn, "grad_out");
  require_shape(dy, {g.N, g.C, g.OH(), g.OW()}, fn, "grad_out");
  check_out(dx, dy, {g.N, g.C, g.H, g.W}, fn, "grad_input");
  if (dt == Dtype::F32) {
    const float* gp = static_cast<const float*>(dy.data());
    float* dp = static_cast<float*>(dx.mutable_data());
    py::gil_scoped_release release;
    avg_pool2d_backward(gp, g, cip, dp);
  } else {
    const double* gp = static_cast<const double*>(dy.data());
    double* dp = static_cast<double*>(dx.mutable_data());
    py::gil_scoped_release release;
    avg_pool2d_backward(gp, g, cip, dp);
  }
}

}  // namespace

void register_pool(py::module_& m) {
  m.def("max_pool2d_forward", &max_fwd_binding, py::arg("x"), py::arg("out"),
        py::arg("indices"), py::arg("kernel"), py::arg("stride"), py::arg("padding"),
        py::arg("ceil_mode") = false);
  m.def("max_pool2d_backward", &max_bwd_binding, py::arg("grad_out"), py::arg("indices"),
        py::arg("grad_input"), py::arg("kernel"), py::arg("stride"), py::arg("padding"),
        py::arg("ceil_mode") = false);
  m.def("avg_pool2d_forward", &avg_fwd_binding, py::arg("x"), py::arg("out"), py::arg("kernel"),
        py::arg("stride"), py::arg("padding"), py::arg("count_include_pad"),
        py::arg("ceil_mode") = false);
  m.def("avg_pool2d_backward", &avg_bwd_binding, py::arg("grad_out"), py::arg("grad_input"),
        py::arg("kernel"), py::arg("stride"), py::arg("padding"), py::arg("count_include_pad"),
        py::arg("ceil_mode") = false);
}

}  // namespace bind
}  // namespace neuropil
