// Bindings of batch normalisation and channel dropout (Dropout2d): validate, extract,
// release the GIL, call (STYLE rule 6). Nothing is converted silently.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "checks.h"
#include "neuropil/elementwise.h"
#include "neuropil/norm.h"

namespace neuropil {
namespace bind {
namespace {

template <typename T>
const T* cptr(const std::optional<py::array>& a) {
  return a ? static_cast<const T*>(a->data()) : nullptr;
}
template <typename T>
T* mptr(std::optional<py::array>& a) {
  return a ? static_cast<T*>(a->mutable_data()) : nullptr;
}

// x [N, C, *]: (N, C, L = product of the rest).
struct NCL {
  index_t N, C, L;
};

NCL ncl_of(const py::array& x, const char* fn, const char* name) {
  if (x.ndim() < 2)
    throw py::value_error(std::string(fn) + ": " + name +
                          " must have shape (N, C), (N, C, L) or (N, C, H, W), got " +
                          shape_str(x));
  NCL s{x.shape(0), x.shape(1), 1};
  for (py::ssize_t i = 2; i < x.ndim(); ++i) s.L *= x.shape(i);
  return s;
}

// None, or a C-contiguous (C,) array of x's dtype; writeable when `out`.
std::optional<py::array> channel_vec(const py::object& o, const py::array& x, index_t C,
                                     const char* fn, const char* name, bool out) {
  if (o.is_none()) return std::nullopt;
  if (!py::isinstance<py::array>(o))
    throw py::type_error(std::string(fn) + ": " + name + " must be a numpy.ndarray or None, got " +
                         py::str(py::type::of(o).attr("__name__")).cast<std::string>());
  py::array a = o.cast<py::array>();
  float_dtype(a, fn, name);
  require_same_dtype(x, "x", a, name, fn);
  require_shape(a, {static_cast<py::ssize_t>(C)}, fn, name);
  if (out) {
    require_writeable_out(a, fn, name);
    require_no_overlap(a, name, x, "x", fn);
  } else {
    require_c_contiguous(a, fn, name);
  }
  return a;
}

void check_out_like(py::array& out, const py::array& ref, const char* fn, const char* name,
                    const char* ref_name) {
  if (!out.dtype().equal(ref.dtype()))
    throw py::type_error(std::string(fn) + ": " + name + " must be " + dtype_str(ref) + " like " +
                         ref_name + ", got " + dtype_str(out));
  std::vector<py::ssize_t> shape(ref.shape(), ref.shape() + ref.ndim());
  require_shape(out, shape, fn, name);
  require_writeable_out(out, fn, name);
}

void no_overlap_all(const std::optional<py::array>& a, const char* a_name,
                    const std::vector<std::pair<const std::optional<py::array>*, const char*>>& others,
                    const char* fn) {
  if (!a) return;
  for (const auto& o : others)
    if (o.first->has_value() && o.first != &a) require_no_overlap(*a, a_name, **o.first, o.second, fn);
}

void batch_norm_forward_b(const py::array& x, const py::object& weight_o,
                          const py::object& bias_o, const py::object& running_mean_o,
                          const py::object& running_var_o, py::array& save_mean,
                          py::array& save_invstd, py::array& out, bool batch_stats,
                          double momentum, double eps) {
  const char* fn = "batch_norm";
  const Dtype dt = float_dtype(x, fn, "x");
  require_c_contiguous(x, fn, "x");
  const NCL s = ncl_of(x, fn, "x");
  if (s.N * s.L == 0)
    throw py::value_error(std::string(fn) + ": x has no elements per channel (shape " +
                          shape_str(x) + ")");
  if (!(eps >= 0.0) || !std::isfinite(eps))
    throw py::value_error(std::string(fn) + ": eps must be a finite number >= 0, got " +
                          std::to_string(eps));
  if (!std::isfinite(momentum))
    throw py::value_error(std::string(fn) + ": momentum must be finite, got " +
                          std::to_string(momentum));
  auto w = channel_vec(weight_o, x, s.C, fn, "weight", false);
  auto b = channel_vec(bias_o, x, s.C, fn, "bias", false);
  auto rm = channel_vec(running_mean_o, x, s.C, fn, "running_mean", true);
  auto rv = channel_vec(running_var_o, x, s.C, fn, "running_var", true);
  if (rm.has_value() != rv.has_value())
    throw py::value_error(std::string(fn) + ": running_mean and running_var must both be "
                          "arrays or both None");
  if (!batch_stats && !rm)
    throw py::value_error(std::string(fn) + ": evaluation with running statistics needs "
                          "running_mean and running_var");
  if (batch_stats && rm && s.N * s.L < 2)
    throw py::value_error(std::string(fn) + ": expected more than 1 value per channel when "
                          "training, got input of shape " + shape_str(x));
  if (rm) require_no_overlap(*rm, "running_mean", *rv, "running_var", fn);
  std::optional<py::array> sm = save_mean, si = save_invstd, o = out;
  for (auto* a : {&sm, &si}) {
    const char* nm = a == &sm ? "save_mean" : "save_invstd";
    float_dtype(**a, fn, nm);
    require_same_dtype(x, "x", **a, nm, fn);
    require_shape(**a, {static_cast<py::ssize_t>(s.C)}, fn, nm);
    require_writeable_out(**a, fn, nm);
    require_no_overlap(**a, nm, x, "x", fn);
  }
  check_out_like(out, x, fn, "out", "x");
  require_no_overlap(out, "out", x, "x", fn);
  const std::vector<std::pair<const std::optional<py::array>*, const char*>> all = {
      {&w, "weight"}, {&b, "bias"}, {&rm, "running_mean"}, {&rv, "running_var"},
      {&sm, "save_mean"}, {&si, "save_invstd"}, {&o, "out"}};
  for (auto* a : {&sm, &si, &o}) {
    const char* nm = a == &sm ? "save_mean" : a == &si ? "save_invstd" : "out";
    no_overlap_all(*a, nm, all, fn);
  }
  no_overlap_all(rm, "running_mean", all, fn);
  no_overlap_all(rv, "running_var", all, fn);
  auto run = [&](auto t) {
    using T = decltype(t);
    const T* xp = static_cast<const T*>(x.data());
    const T *wp = cptr<T>(w), *bp = cptr<T>(b);
    T *rmp = mptr<T>(rm), *rvp = mptr<T>(rv), *smp = mptr<T>(sm), *sip = mptr<T>(si),
      *yp = mptr<T>(o);
    py::gil_scoped_release release;
    batch_norm_forward<T>(s.N, s.C, s.L, xp, wp, bp, eps, batch_stats, momentum, rmp, rvp, smp,
                          sip, yp);
  };
  if (dt == Dtype::F32) run(float{}); else run(double{});
}

void batch_norm_backward_b(const py::array& x, const py::array& dy, const py::object& weight_o,
                           const py::array& mean, const py::array& invstd, bool batch_stats,
                           const py::object& dx_o, const py::object& dw_o, const py::object& db_o,
                           double beta_weight, double beta_bias) {
  const char* fn = "batch_norm_backward";
  const Dtype dt = float_dtype(x, fn, "x");
  require_c_contiguous(x, fn, "x");
  const NCL s = ncl_of(x, fn, "x");
  float_dtype(dy, fn, "grad_out");
  require_same_dtype(x, "x", dy, "grad_out", fn);
  require_shape(dy, std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()), fn, "grad_out");
  require_c_contiguous(dy, fn, "grad_out");
  auto w = channel_vec(weight_o, x, s.C, fn, "weight", false);
  auto m = channel_vec(mean, x, s.C, fn, "mean", false);
  auto is = channel_vec(invstd, x, s.C, fn, "invstd", false);
  std::optional<py::array> dx;
  if (!dx_o.is_none()) {
    if (!py::isinstance<py::array>(dx_o))
      throw py::type_error(std::string(fn) + ": grad_input must be a numpy.ndarray or None");
    dx = dx_o.cast<py::array>();
    check_out_like(*dx, x, fn, "grad_input", "x");
  }
  auto dw = channel_vec(dw_o, x, s.C, fn, "grad_weight", true);
  auto db = channel_vec(db_o, x, s.C, fn, "grad_bias", true);
  if (beta_weight != 0.0 && beta_weight != 1.0)
    throw py::value_error(std::string(fn) + ": beta_weight must be 0 or 1");
  if (beta_bias != 0.0 && beta_bias != 1.0)
    throw py::value_error(std::string(fn) + ": beta_bias must be 0 or 1");
  std::optional<py::array> xo = x, dyo = dy;
  const std::vector<std::pair<const std::optional<py::array>*, const char*>> all = {
      {&xo, "x"}, {&dyo, "grad_out"}, {&w, "weight"}, {&m, "mean"}, {&is, "invstd"},
      {&dx, "grad_input"}, {&dw, "grad_weight"}, {&db, "grad_bias"}};
  no_overlap_all(dx, "grad_input", all, fn);
  no_overlap_all(dw, "grad_weight", all, fn);
  no_overlap_all(db, "grad_bias", all, fn);
  auto run = [&](auto t) {
    using T = decltype(t);
    const T *xp = static_cast<const T*>(x.data()), *dyp = static_cast<const T*>(dy.data());
    const T *wp = cptr<T>(w), *mp = cptr<T>(m), *ip = cptr<T>(is);
    T *dxp = mptr<T>(dx), *dwp = mptr<T>(dw), *dbp = mptr<T>(db);
    py::gil_scoped_release release;
    batch_norm_backward<T>(s.N, s.C, s.L, xp, dyp, wp, mp, ip, batch_stats, dxp,
                           static_cast<T>(beta_weight), dwp, static_cast<T>(beta_bias), dbp);
  };
  if (dt == Dtype::F32) run(float{}); else run(double{});
}

void dropout_channels_b(const py::array& x, py::array& out, double p, std::uint64_t seed) {
  const char* fn = "dropout2d";
  if (!(p >= 0.0 && p < 1.0))
    throw py::value_error(std::string(fn) + ": p must be in [0, 1), got " + std::to_string(p));
  const Dtype dt = float_dtype(x, fn, "x");
  require_c_contiguous(x, fn, "x");
  require_ndim(x, 4, fn, "x", "(N, C, H, W)");
  check_out_like(out, x, fn, "out", "x");
  if (!(out.data() == x.data() && out.nbytes() == x.nbytes()))
    require_no_overlap(out, "out", x, "x", fn);
  const index_t P = x.shape(0) * x.shape(1), S = x.shape(2) * x.shape(3);
  auto run = [&](auto t) {
    using T = decltype(t);
    const T* xp = static_cast<const T*>(x.data());
    T* yp = static_cast<T*>(out.mutable_data());
    py::gil_scoped_release release;
    dropout_channels<T>(P, S, p, seed, xp, yp);
  };
  if (dt == Dtype::F32) run(float{}); else run(double{});
}

}  // namespace

void register_norm(py::module_& m) {
  m.def("batch_norm_forward", &batch_norm_forward_b, py::arg("x"), py::arg("weight"),
        py::arg("bias"), py::arg("running_mean"), py::arg("running_var"), py::arg("save_mean"),
        py::arg("save_invstd"), py::arg("out"), py::arg("batch_stats"), py::arg("momentum"),
        py::arg("eps"),
        "out = (x - mean) * invstd * weight + bias over x (N, C, *); batch statistics (and a "
        "running-statistics update when given) or running statistics; writes save_mean, "
        "save_invstd (C,). See neuropil/norm.h.");
  m.def("batch_norm_backward", &batch_norm_backward_b, py::arg("x"), py::arg("grad_out"),
        py::arg("weight"), py::arg("mean"), py::arg("invstd"), py::arg("batch_stats"),
        py::arg("grad_input"), py::arg("grad_weight"), py::arg("grad_bias"),
        py::arg("beta_weight") = 0.0, py::arg("beta_bias") = 0.0,
        "Gradients of batch_norm from the saved mean/invstd; each output may be None. "
        "grad_input is overwritten; grad_weight/grad_bias = beta * old + gradient (beta 0 or 1).");
  m.def("dropout2d", &dropout_channels_b, py::arg("x"), py::arg("out"), py::arg("p"),
        py::arg("seed"),
        "channel dropout of x (N, C, H, W): whole (n, c) planes kept (scaled 1/(1-p)) or zeroed "
        "by a counter-based hash of (seed, n*C + c); the same call on grad_out is the backward.");
}

}  // namespace bind
}  // namespace neuropil
