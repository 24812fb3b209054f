// Bindings of the elementwise family (activations, bias, softmax, dropout) and of the
// fused linear layer: validate, extract, release the GIL, call (STYLE rule 6).
// Losses: loss.cpp.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "checks.h"
#include "elementwise_args.h"
#include "neuropil/elementwise.h"
#include "neuropil/linear.h"

namespace neuropil {
namespace bind {
namespace {
using namespace elementwise_args;

const char* act_name(int act, bool backward) {
  static const char* fwd[] = {"identity", "relu", "sigmoid", "tanh"};
  static const char* bwd[] = {"identity_backward", "relu_backward", "sigmoid_backward",
                              "tanh_backward"};
  return backward ? bwd[act] : fwd[act];
}

Activation to_act(int act, const char* fn) {
  if (act < 0 || act > 3)
    throw py::value_error(std::string(fn) + ": activation code must be 0..3 (identity, relu, "
                          "sigmoid, tanh), got " + std::to_string(act));
  return static_cast<Activation>(act);
}

// --- activations -------------------------------------------------------------

void activation_forward_b(const py::array& x, py::array& out, int act_code) {
  const Activation act = to_act(act_code, "activation");
  const char* fn = act_name(act_code, false);
  const Dtype dt = float_input(x, fn, "x");
  out_like(out, "out", x, "x", fn);
  same_or_disjoint(out, "out", x, "x", fn);
  const index_t n = x.size();
  by_dtype(dt, [&](auto t) {
    using T = decltype(t);
    const T* xp = cptr<T>(x);
    T* yp = mptr<T>(out);
    py::gil_scoped_release release;
    activation_forward<T>(act, n, xp, yp);
  });
}

void activation_backward_b(const py::array& y, const py::array& dy, py::array& out, int act_code) {
  const Activation act = to_act(act_code, "activation");
  const char* fn = act_name(act_code, true);
  const Dtype dt = float_input(y, fn, "y");
  input_like(dy, "grad_out", y, "y", fn);
  out_like(out, "out", y, "y", fn);
  same_or_disjoint(out, "out", dy, "grad_out", fn);
  same_or_disjoint(out, "out", y, "y", fn);
  const index_t n = y.size();
  by_dtype(dt, [&](auto t) {
    using T = decltype(t);
    const T *yp = cptr<T>(y), *dp = cptr<T>(dy);
    T* op = mptr<T>(out);
    py::gil_scoped_release release;
    activation_backward<T>(act, n, yp, dp, op);
  });
}

void bias_activation_b(const py::array& x, const py::object& bias_o, py::array& out, int act_code) {
  const Activation act = to_act(act_code, "bias_activation");
  const char* fn = "bias_activation";
  const Dtype dt = float_input(x, fn, "x");
  require_ndim(x, 2, fn, "x", "(N, C)");
  const index_t N = x.shape(0), C = x.shape(1);
  std::optional<py::array> bias;
  if (!bias_o.is_none()) {
    bias = as_array_arg(bias_o, fn, "bias");
    float_dtype(*bias, fn, "bias");
    require_same_dtype(x, "x", *bias, "bias", fn);
    require_shape(*bias, {C}, fn, "bias");
    require_c_contiguous(*bias, fn, "bias");
  }
  out_like(out, "out", x, "x", fn);
  same_or_disjoint(out, "out", x, "x", fn);
  if (bias) require_no_overlap(out, "out", *bias, "bias", fn);
  by_dtype(dt, [&](auto t) {
    using T = decltype(t);
    const T* xp = cptr<T>(x);
    const T* bp = bias ? cptr<T>(*bias) : nullptr;
    T* yp = mptr<T>(out);
    py::gil_scoped_release release;
    bias_activation<T>(act, N, C, xp, bp, yp);
  });
}

void bias_grad_b(const py::array& dy, py::array& db, double beta) {
  const char* fn = "bias_grad";
  const Dtype dt = float_input(dy, fn, "grad_out");
  require_ndim(dy, 2, fn, "grad_out", "(N, C)");
  const index_t N = dy.shape(0), C = dy.shape(1);
  if (!db.dtype().equal(dy.dtype()))
    throw py::type_error(std::string(fn) + ": out must be " + dtype_str(dy) +
                         " like grad_out, got " + dtype_str(db));
  require_shape(db, {C}, fn, "out");
  require_writeable_out(db, fn, "out");
  require_no_overlap(db, "out", dy, "grad_out", fn);
  by_dtype(dt, [&](auto t) {
    using T = decltype(t);
    const T* dp = cptr<T>(dy);
    T* bp = mptr<T>(db);
    py::gil_scoped_release release;
    bias_grad<T>(N, C, dp, static_cast<T>(beta), bp);
  });
}

// --- parametrised activations -------------------------------------------------

void require_finite(double v, const char* fn, const char* name) {
  if (!std::isfinite(v))
    throw py::value_error(std::string(fn) + ": " + name + " must be a finite number, got " +
                          std::to_string(v));
}

// out = f(x) over all elements: kernel(n, x, out).
template <typename K>
void pointwise_forward_b(const char* fn, const py::array& x, py::array& out, K&& kernel) {
  const Dtype dt = float_input(x, fn, "x");
  out_like(out, "out", x, "x", fn);
  same_or_disjoint(out, "out", x, "x", fn);
  const index_t n = x.size();
  by_dtype(dt, [&](auto t) {
    using T = decltype(t);
    const T* xp = cptr<T>(x);
    T* yp = mptr<T>(out);
    py::gil_scoped_release release;
    kernel(n, xp, yp);
  });
}

// out = grad_out * f'(.) read through `s` (x or y): kernel(n, s, dy, out).
template <typename K>
void pointwise_backward_b(const char* fn, const char* s_name, const py::array& s,
                          const py::array& dy, py::array& out, K&& kernel) {
  const Dtype dt = float_input(s, fn, s_name);
  input_like(dy, "grad_out", s, s_name, fn);
  out_like(out, "out", s, s_name, fn);
  same_or_disjoint(out, "out", dy, "grad_out", fn);
  same_or_disjoint(out, "out", s, s_name, fn);
  const index_t n = s.size();
  by_dtype(dt, [&](auto t) {
    using T = decltype(t);
    const T *sp = cptr<T>(s), *dp = cptr<T>(dy);
    T* op = mptr<T>(out);
    py::gil_scoped_release release;
    kernel(n, sp, dp, op);
  });
}

GeluApprox to_gelu_approx(int code, const char* fn) {
  if (code != 0 && code != 1)
    throw py::value_error(std::string(fn) + ": approximate code must be 0 (none) or 1 (tanh), got " +
                          std::to_string(code));
  return static_cast<GeluApprox>(code);
}

void softplus_args(double beta, double threshold, const char* fn) {
  require_finite(beta, fn, "beta");
  if (beta == 0.0) throw py::value_error(std::string(fn) + ": beta must be non-zero, got 0");
  if (std::isnan(threshold)) throw py::value_error(std::string(fn) + ": threshold is NaN");
}

void register_pointwise(py::module_& m) {
  m.def("leaky_relu", [](const py::array& x, py::array& out, double slope) {
    require_finite(slope, "leaky_relu", "negative_slope");
    pointwise_forward_b("leaky_relu", x, out, [&](index_t n, auto xp, auto yp) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(xp)>>;
      leaky_relu_forward<T>(static_cast<T>(slope), n, xp, yp);
    });
  }, py::arg("x"), py::arg("out"), py::arg("negative_slope"),
     "out = x > 0 ? x : negative_slope * x. out may be x.");
  m.def("leaky_relu_backward", [](const py::array& s, const py::array& dy, py::array& out,
                                  double slope) {
    require_finite(slope, "leaky_relu_backward", "negative_slope");
    pointwise_backward_b("leaky_relu_backward", "x", s, dy, out, [&](index_t n, auto sp, auto dp, auto op) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(sp)>>;
      leaky_relu_backward<T>(static_cast<T>(slope), n, sp, dp, op);
    });
  }, py::arg("x"), py::arg("grad_out"), py::arg("out"), py::arg("negative_slope"),
     "out = x > 0 ? grad_out : negative_slope * grad_out; x may be the output when "
     "negative_slope >= 0. out may be grad_out.");
  m.def("elu", [](const py::array& x, py::array& out, double alpha) {
    require_finite(alpha, "elu", "alpha");
    pointwise_forward_b("elu", x, out, [&](index_t n, auto xp, auto yp) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(xp)>>;
      elu_forward<T>(static_cast<T>(alpha), n, xp, yp);
    });
  }, py::arg("x"), py::arg("out"), py::arg("alpha"),
     "out = x > 0 ? x : alpha * expm1(x). out may be x.");
  m.def("elu_backward", [](const py::array& s, const py::array& dy, py::array& out, double alpha,
                           bool is_result) {
    const char* fn = "elu_backward";
    require_finite(alpha, fn, "alpha");
    if (is_result && alpha < 0)
      throw py::value_error(std::string(fn) + ": the gradient from the output needs alpha >= 0 "
                            "(a negative alpha makes y > 0 for some x < 0), got alpha = " +
                            std::to_string(alpha) + "; pass the input instead");
    pointwise_backward_b(fn, is_result ? "y" : "x", s, dy, out, [&](index_t n, auto sp, auto dp, auto op) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(sp)>>;
      elu_backward<T>(static_cast<T>(alpha), is_result, n, sp, dp, op);
    });
  }, py::arg("x"), py::arg("grad_out"), py::arg("out"), py::arg("alpha"), py::arg("is_result"),
     "ELU gradient from the input x, or from the output y when is_result (alpha >= 0).");
  m.def("gelu", [](const py::array& x, py::array& out, int approximate) {
    const GeluApprox ap = to_gelu_approx(approximate, "gelu");
    pointwise_forward_b("gelu", x, out, [&](index_t n, auto xp, auto yp) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(xp)>>;
      gelu_forward<T>(ap, n, xp, yp);
    });
  }, py::arg("x"), py::arg("out"), py::arg("approximate"),
     "out = x * Phi(x) (approximate 0) or PyTorch's tanh form (1). out may be x.");
  m.def("gelu_backward", [](const py::array& x, const py::array& dy, py::array& out, int approximate) {
    const GeluApprox ap = to_gelu_approx(approximate, "gelu_backward");
    pointwise_backward_b("gelu_backward", "x", x, dy, out, [&](index_t n, auto sp, auto dp, auto op) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(sp)>>;
      gelu_backward<T>(ap, n, sp, dp, op);
    });
  }, py::arg("x"), py::arg("grad_out"), py::arg("out"), py::arg("approximate"),
     "GELU gradient from the input x. out may be grad_out.");
  m.def("softplus", [](const py::array& x, py::array& out, double beta, double threshold) {
    softplus_args(beta, threshold, "softplus");
    pointwise_forward_b("softplus", x, out, [&](index_t n, auto xp, auto yp) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(xp)>>;
      softplus_forward<T>(static_cast<T>(beta), static_cast<T>(threshold), n, xp, yp);
    });
  }, py::arg("x"), py::arg("out"), py::arg("beta"), py::arg("threshold"),
     "out = beta*x > threshold ? x : log1p(exp(beta*x)) / beta. out may be x.");
  m.def("softplus_backward", [](const py::array& x, const py::array& dy, py::array& out, double beta,
                                double threshold) {
    softplus_args(beta, threshold, "softplus_backward");
    pointwise_backward_b("softplus_backward", "x", x, dy, out, [&](index_t n, auto sp, auto dp, auto op) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(sp)>>;
      softplus_backward<T>(static_cast<T>(beta), static_cast<T>(threshold), n, sp, dp, op);
    });
  }, py::arg("x"), py::arg("grad_out"), py::arg("out"), py::arg("beta"), py::arg("threshold"),
     "out = beta*x > threshold ? grad_out : grad_out * sigmoid(beta*x). out may be grad_out.");
}

// --- softmax ---------------------------------------------------------------

void softmax_b(const py::array& x, py::array& out, bool log) {
  const char* fn = log ? "log_softmax" : "softmax";
  const Dtype dt = float_input(x, fn, "x");
  auto [N, C] = rows_cols(x, fn, "x");
  out_like(out, "out", x, "x", fn);
  same_or_disjoint(out, "out", x, "x", fn);
  by_dtype(dt, [&, N = N, C = C](auto t) {
    using T = decltype(t);
    const T* xp = cptr<T>(x);
    T* yp = mptr<T>(out);
    py::gil_scoped_release release;
    if (log)
      log_softmax_forward<T>(N, C, xp, yp);
    else
      softmax_forward<T>(N, C, xp, yp);
  });
}

void argmax_b(const py::array& x, py::array& out) {
  const char* fn = "argmax";
  const Dtype dt = float_input(x, fn, "x");
  auto [N, C] = rows_cols(x, fn, "x");
  if (C < 1) throw py::value_error("argmax: x must have at least one column, got shape " +
                                   shape_str(x));
  if (!out.dtype().equal(py::dtype::of<std::int64_t>()))
    throw py::type_error("argmax: out must be int64, got " + dtype_str(out));
  require_shape(out, {N}, fn, "out");
  require_writeable_out(out, fn, "out");
  by_dtype(dt, [&, N = N, C = C](auto t) {
    using T = decltype(t);
    const T* xp = cptr<T>(x);
    std::int64_t* op = static_cast<std::int64_t*>(out.mutable_data());
    py::gil_scoped_release release;
    argmax_rows<T>(N, C, xp, op);
  });
}

void softmax_backward_b(const py::array& y, const py::array& dy, py::array& out, bool log) {
  const char* fn = log ? "log_softmax_backward" : "softmax_backward";
  const Dtype dt = float_input(y, fn, "y");
  auto [N, C] = rows_cols(y, fn, "y");
  input_like(dy, "grad_out", y, "y", fn);
  out_like(out, "out", y, "y", fn);
  same_or_disjoint(out, "out", dy, "grad_out", fn);
  require_no_overlap(out, "out", y, "y", fn);
  by_dtype(dt, [&, N = N, C = C](auto t) {
    using T = decltype(t);
    const T *yp = cptr<T>(y), *dp = cptr<T>(dy);
    T* op = mptr<T>(out);
    py::gil_scoped_release release;
    if (log)
      log_softmax_backward<T>(N, C, yp, dp, op);
    else
      softmax_backward<T>(N, C, yp, dp, op);
  });
}

// --- dropout -------------------------------------------------------------------

void dropout_b(const py::array& x, py::array& out, double p, std::uint64_t seed, bool backward) {
  const char* fn = backward ? "dropout_backward" : "dropout";
  if (!(p >= 0.0 && p < 1.0))
    throw py::value_error(std::string(fn) + ": p must be in [0, 1), got " + std::to_string(p));
  const Dtype dt = float_input(x, fn, backward ? "grad_out" : "x");
  out_like(out, "out", x, backward ? "grad_out" : "x", fn);
  same_or_disjoint(out, "out", x, backward ? "grad_out" : "x", fn);
  const index_t n = x.size();
  by_dtype(dt, [&](auto t) {
    using T = decltype(t);
    const T* xp = cptr<T>(x);
    T* yp = mptr<T>(out);
    py::gil_scoped_release release;
    if (backward)
      dropout_backward<T>(n, p, seed, xp, yp);
    else
      dropout_forward<T>(n, p, seed, xp, yp);
  });
}

// --- linear ------------------------------------------------------------------

void linear_forward_b(const py::array& x, const py::array& w, const py::object& b_o,
                      py::array& out, int act_code) {
  const char* fn = "linear";
  const Activation act = to_act(act_code, fn);
  const Dtype dt = float_input(x, fn, "input");
  require_ndim(x, 2, fn, "input", "(N, in_features)");
  float_input(w, fn, "weight");
  require_same_dtype(x, "input", w, "weight", fn);
  require_ndim(w, 2, fn, "weight", "(out_features, in_features)");
  const index_t N = x.shape(0), IN = x.shape(1), OUT = w.shape(0);
  if (w.shape(1) != IN)
    throw py::value_error(std::string(fn) + ": input has " + std::to_string(IN) +
                          " features but weight is " + shape_str(w) +
                          " (out_features, in_features); expected input (N, " +
                          std::to_string(w.shape(1)) + "), got " + shape_str(x));
  std::optional<py::array> b;
  if (!b_o.is_none()) {
    b = as_array_arg(b_o, fn, "bias");
    float_input(*b, fn, "bias");
    require_same_dtype(x, "input", *b, "bias", fn);
    require_shape(*b, {OUT}, fn, "bias");
  }
  if (!out.dtype().equal(x.dtype()))
    throw py::type_error(std::string(fn) + ": out must be " + dtype_str(x) + " like input, got " +
                         dtype_str(out));
  require_shape(out, {N, OUT}, fn, "out");
  require_writeable_out(out, fn, "out");
  require_no_overlap(out, "out", x, "input", fn);
  require_no_overlap(out, "out", w, "weight", fn);
  if (b) require_no_overlap(out, "out", *b, "bias", fn);
  by_dtype(dt, [&](auto t) {
    using T = decltype(t);
    const T *xp = cptr<T>(x), *wp = cptr<T>(w);
    const T* bp = b ? cptr<T>(*b) : nullptr;
    T* yp = mptr<T>(out);
    py::gil_scoped_release release;
    linear_forward<T>(N, IN, OUT, xp, wp, bp, act, yp);
  });
}

void linear_backward_b(const py::array& x, const py::array& w, const py::array& dy,
                       const py::object& dw_o, const py::object& db_o, const py::object& dx_o,
                       double beta_w, double beta_b) {
  const char* fn = "linear_backward";
  const Dtype dt = float_input(x, fn, "input");
  require_ndim(x, 2, fn, "input", "(N, in_features)");
  float_input(w, fn, "weight");
  require_same_dtype(x, "input", w, "weight", fn);
  require_ndim(w, 2, fn, "weight", "(out_features, in_features)");
  const index_t N = x.shape(0), IN = x.shape(1), OUT = w.shape(0);
  require_shape(w, {OUT, IN}, fn, "weight");
  float_input(dy, fn, "grad_out");
  require_same_dtype(x, "input", dy, "grad_out", fn);
  require_shape(dy, {N, OUT}, fn, "grad_out");
  const py::array* ins[] = {&x, &w, &dy};
  const char* in_names[] = {"input", "weight", "grad_out"};
  auto out_arg = [&](const py::object& o, const char* name,
                     std::vector<py::ssize_t> shape) -> std::optional<py::array> {
    if (o.is_none()) return std::nullopt;
    py::array a = as_array_arg(o, fn, name);
    if (!a.dtype().equal(x.dtype()))
      throw py::type_error(std::string(fn) + ": " + name + " must be " + dtype_str(x) +
                           " like input, got " + dtype_str(a));
    require_shape(a, shape, fn, name);
    require_writeable_out(a, fn, name);
    for (int i = 0; i < 3; ++i) require_no_overlap(a, name, *ins[i], in_names[i], fn);
    return a;
  };
  std::optional<py::array> dw = out_arg(dw_o, "grad_weight", {OUT, IN});
  std::optional<py::array> db = out_arg(db_o, "grad_bias", {OUT});
  std::optional<py::array> dx = out_arg(dx_o, "grad_input", {N, IN});
  if (dw && db) require_no_overlap(*dw, "grad_weight", *db, "grad_bias", fn);
  if (dw && dx) require_no_overlap(*dx, "grad_input", *dw, "grad_weight", fn);
  if (db && dx) require_no_overlap(*dx, "grad_input", *db, "grad_bias", fn);
  by_dtype(dt, [&](auto t) {
    using T = decltype(t);
    const T *xp = cptr<T>(x), *wp = cptr<T>(w), *dp = cptr<T>(dy);
    T* dwp = dw ? mptr<T>(*dw) : nullptr;
    T* dbp = db ? mptr<T>(*db) : nullptr;
    T* dxp = dx ? mptr<T>(*dx) : nullptr;
    py::gil_scoped_release release;
    linear_backward<T>(N, IN, OUT, xp, wp, dp, static_cast<T>(beta_w), dwp, static_cast<T>(beta_b),
                       dbp, dxp);
  });
}

}  // namespace

void register_loss(py::module_& m);  // loss.cpp

void register_elementwise(py::module_& m) {
  register_pointwise(m);
  register_loss(m);
  m.def("activation_forward", &activation_forward_b, py::arg("x"), py::arg("out"), py::arg("act"),
        "out = act(x); act: 0 identity, 1 relu, 2 sigmoid, 3 tanh. out may be x.");
  m.def("activation_backward", &activation_backward_b, py::arg("y"), py::arg("grad_out"),
        py::arg("out"), py::arg("act"),
        "out = grad_out * act'(.) from the cached output y = act(x). out may be grad_out.");
  m.def("bias_activation", &bias_activation_b, py::arg("x"), py::arg("bias"), py::arg("out"),
        py::arg("act"), "out[N, C] = act(x + bias[C]); bias may be None; out may be x.");
  m.def("bias_grad", &bias_grad_b, py::arg("grad_out"), py::arg("out"), py::arg("beta") = 0.0,
        "out[C] = beta * out + column sums of grad_out[N, C] (deterministic).");
  m.def("softmax", &softmax_b, py::arg("x"), py::arg("out"), py::arg("log") = false,
        "softmax (or log_softmax) over the last axis; out may be x.");
  m.def("argmax", &argmax_b, py::arg("x"), py::arg("out"),
        "out[n] = argmax over the last axis of x (N, C); first maximum, NaN counts as maximum.");
  m.def("softmax_backward", &softmax_backward_b, py::arg("y"), py::arg("grad_out"),
        py::arg("out"), py::arg("log") = false,
        "gradient of (log_)softmax over the last axis from its output y.");
  m.def("dropout", &dropout_b, py::arg("x"), py::arg("out"), py::arg("p"), py::arg("seed"),
        py::arg("backward") = false,
        "inverted dropout with a counter-based mask keyed by seed (same for any thread count).");
  m.def("linear_forward", &linear_forward_b, py::arg("input"), py::arg("weight"), py::arg("bias"),
        py::arg("out"), py::arg("act") = 0,
        "out = act(input @ weight.T + bias): one gemm plus a fused epilogue.");
  m.def("linear_backward", &linear_backward_b, py::arg("input"), py::arg("weight"),
        py::arg("grad_out"), py::arg("grad_weight"), py::arg("grad_bias"), py::arg("grad_input"),
        py::arg("beta_weight") = 1.0, py::arg("beta_bias") = 1.0,
        "grad_weight = beta_weight * grad_weight + grad_out.T @ input; grad_bias = beta_bias * "
        "grad_bias + column sums; grad_input = grad_out @ weight. Any output may be None "
        "(skipped); beta 0 overwrites without reading.");
}

}  // namespace bind
}  // namespace neuropil
