// Bindings of the loss kernels (neuropil/loss.h): validate, extract, release the
// GIL, call (STYLE rule 6). Every loss takes (input, target, grad=None,
// reduction=0, ..., losses=None): reduction 0 mean, 1 sum (the loss is returned),
// 2 none (the per-element losses are written into `losses`, which is required).
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "checks.h"
#include "elementwise_args.h"
#include "neuropil/loss.h"

namespace neuropil {
namespace bind {
namespace {
using namespace elementwise_args;

Reduction to_reduction(int r, const char* fn) {
  if (r < 0 || r > 2)
    throw py::value_error(std::string(fn) + ": reduction code must be 0 (mean), 1 (sum) or "
                          "2 (none), got " + std::to_string(r));
  return static_cast<Reduction>(r);
}

std::string shape_of(const std::vector<py::ssize_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// Index `flat` of an array of `shape`, written as NumPy would index it.
std::string index_str(index_t flat, const std::vector<py::ssize_t>& shape) {
  if (shape.size() == 1) return std::to_string(flat);
  std::vector<index_t> idx(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  std::string s = "(";
  for (std::size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
  return s + ")";
}

void require_nonempty(const py::array& a, const char* fn, const char* name) {
  if (a.size() == 0)
    throw py::value_error(std::string(fn) + ": " + name + " is empty (shape " + shape_str(a) +
                          "); a loss needs at least one element");
}

// grad: None or an array shaped like `input`, which may be `input` itself but must
// not overlap `target`.
std::optional<py::array> grad_arg(const py::object& o, const py::array& input,
                                  const py::array& target, const char* fn) {
  if (o.is_none()) return std::nullopt;
  py::array g = as_array_arg(o, fn, "grad");
  out_like(g, "grad", input, "input", fn);
  same_or_disjoint(g, "grad", input, "input", fn);
  require_no_overlap(g, "grad", target, "target", fn);
  return g;
}

// losses: required (shape `shape`, input's dtype) exactly when reduction is None;
// overlaps none of the other arrays.
std::optional<py::array> losses_arg(const py::object& o, Reduction red,
                                    const std::vector<py::ssize_t>& shape, const py::array& input,
                                    const py::array& target, const std::optional<py::array>& grad,
                                    const char* fn) {
  if (red != Reduction::None) {
    if (!o.is_none())
      throw py::value_error(std::string(fn) + ": losses is written only with reduction 2 (none)");
    return std::nullopt;
  }
  if (o.is_none())
    throw py::value_error(std::string(fn) + ": reduction 2 (none) needs a losses array of shape " +
                          shape_of(shape));
  py::array l = as_array_arg(o, fn, "losses");
  if (!l.dtype().equal(input.dtype()))
    throw py::type_error(std::string(fn) + ": losses must be " + dtype_str(input) +
                         " like input, got " + dtype_str(l));
  require_shape(l, shape, fn, "losses");
  require_writeable_out(l, fn, "losses");
  require_no_overlap(l, "losses", input, "input", fn);
  require_no_overlap(l, "losses", target, "target", fn);
  if (grad) require_no_overlap(l, "losses", *grad, "grad", fn);
  return l;
}

template <typename T>
T* ptr_or_null(std::optional<py::array>& a) {
  return a ? mptr<T>(*a) : nullptr;
}

// --- class losses --------------------------------------------------------------

// input (N, C, d1, ...) -> N, C, S = d1 * ...; the loss shape (N, d1, ...).
struct ClassShape {
  index_t N, C, S;
  std::vector<py::ssize_t> loss_shape;
};

ClassShape class_shape(const py::array& x, const char* fn, const char* what) {
  if (x.ndim() < 2)
    throw py::value_error(std::string(fn) + ": input must have shape (N, C) or (N, C, d1, ...) of " +
                          what + ", got shape " + shape_str(x));
  ClassShape cs{x.shape(0), x.shape(1), 1, {x.shape(0)}};
  for (py::ssize_t d = 2; d < x.ndim(); ++d) {
    cs.S *= x.shape(d);
    cs.loss_shape.push_back(x.shape(d));
  }
  if (cs.C == 0)
    throw py::value_error(std::string(fn) + ": input has 0 classes (shape " + shape_str(x) + ")");
  require_nonempty(x, fn, "input");
  return cs;
}

// Class-index targets: int64 of the loss shape, each in 0..C-1 or == ignore_index.
void check_labels(const py::array& target, const ClassShape& cs, std::int64_t ignore_index,
                  const py::array& input, const char* fn) {
  if (!target.dtype().equal(py::dtype::of<std::int64_t>()))
    throw py::type_error(std::string(fn) + ": integer class labels must be int64 here, got " +
                         dtype_str(target) + " (neuropil.functional converts other integer dtypes)");
  bool ok = target.ndim() == static_cast<py::ssize_t>(cs.loss_shape.size());
  for (std::size_t d = 0; ok && d < cs.loss_shape.size(); ++d) ok = target.shape(d) == cs.loss_shape[d];
  if (!ok)
    throw py::value_error(std::string(fn) + ": target must have shape " + shape_of(cs.loss_shape) +
                          " for input of shape " + shape_str(input) + " (class labels: the input's "
                          "shape without its class axis 1), got " + shape_str(target));
  require_c_contiguous(target, fn, "target");
  const std::int64_t* lp = static_cast<const std::int64_t*>(target.data());
  const index_t P = cs.N * cs.S;
  for (index_t p = 0; p < P; ++p)
    if ((lp[p] < 0 || lp[p] >= cs.C) && lp[p] != ignore_index)
      throw py::value_error(std::string(fn) + ": target label " + std::to_string(lp[p]) +
                            " at index " + index_str(p, cs.loss_shape) + " is out of range for " +
                            std::to_string(cs.C) + " classes (expected 0.." +
                            std::to_string(cs.C - 1) + " or ignore_index " +
                            std::to_string(ignore_index) + ")");
}

std::optional<py::array> weight_arg(const py::object& o, const py::array& input, index_t C,
                                    const char* fn) {
  if (o.is_none()) return std::nullopt;
  py::array w = as_array_arg(o, fn, "weight");
  float_dtype(w, fn, "weight");
  require_same_dtype(input, "input", w, "weight", fn);
  require_shape(w, {C}, fn, "weight");
  require_c_contiguous(w, fn, "weight");
  return w;
}

template <bool Nll>
double class_loss_b(const py::array& input, const py::array& target, const py::object& grad_o,
                    int reduction_code, const py::object& weight_o, std::int64_t ignore_index,
                    const py::object& losses_o) {
  const char* fn = Nll ? "nll_loss" : "cross_entropy";
  const Reduction red = to_reduction(reduction_code, fn);
  const Dtype dt = float_input(input, fn, "input");
  const ClassShape cs = class_shape(input, fn, Nll ? "log-probabilities" : "logits");
  const bool labels = Nll || target.dtype().kind() != 'f';
  if (labels) {
    check_labels(target, cs, ignore_index, input, fn);
  } else {
    float_dtype(target, fn, "target");
    require_same_dtype(input, "input", target, "target", fn);
    std::vector<py::ssize_t> shape(input.shape(), input.shape() + input.ndim());
    if (target.ndim() != input.ndim() || !std::equal(shape.begin(), shape.end(), target.shape()))
      throw py::value_error(std::string(fn) + ": probability targets must have the input's shape " +
                            shape_str(input) + ", got " + shape_str(target) +
                            " (class labels would be int64 of shape " + shape_of(cs.loss_shape) + ")");
    require_c_contiguous(target, fn, "target");
  }
  std::optional<py::array> weight = weight_arg(weight_o, input, cs.C, fn);
  std::optional<py::array> grad = grad_arg(grad_o, input, target, fn);
  std::optional<py::array> losses = losses_arg(losses_o, red, cs.loss_shape, input, target, grad, fn);
  if (grad && weight) require_no_overlap(*grad, "grad", *weight, "weight", fn);
  if (losses && weight) require_no_overlap(*losses, "losses", *weight, "weight", fn);
  return by_dtype(dt, [&](auto t) {
    using T = decltype(t);
    const T* xp = cptr<T>(input);
    const T* wp = weight ? cptr<T>(*weight) : nullptr;
    T* gp = ptr_or_null<T>(grad);
    T* lossp = ptr_or_null<T>(losses);
    if (labels) {
      const std::int64_t* lp = cptr<std::int64_t>(target);
      py::gil_scoped_release release;
      return Nll ? nll_loss<T>(cs.N, cs.C, cs.S, xp, lp, wp, ignore_index, red, lossp, gp)
                 : softmax_cross_entropy_labels<T>(cs.N, cs.C, cs.S, xp, lp, wp, ignore_index, red,
                                                   lossp, gp);
    }
    const T* tp = cptr<T>(target);
    py::gil_scoped_release release;
    return softmax_cross_entropy_targets<T>(cs.N, cs.C, cs.S, xp, tp, wp, red, lossp, gp);
  });
}

// --- elementwise losses --------------------------------------------------------------

enum class Pointwise { Mse, L1, BceLogits, Bce };

const char* pointwise_name(Pointwise k) {
  switch (k) {
    case Pointwise::Mse: return "mse_loss";
    case Pointwise::L1: return "l1_loss";
    case Pointwise::BceLogits: return "binary_cross_entropy_with_logits";
    case Pointwise::Bce: return "binary_cross_entropy";
  }
  return "";
}

template <Pointwise K>
double pointwise_loss_b(const py::array& input, const py::array& target, const py::object& grad_o,
                        int reduction_code, const py::object& losses_o) {
  const char* fn = pointwise_name(K);
  const Reduction red = to_reduction(reduction_code, fn);
  const Dtype dt = float_input(input, fn, "input");
  input_like(target, "target", input, "input", fn);
  require_nonempty(input, fn, "input");
  const index_t n = input.size();
  std::optional<py::array> grad = grad_arg(grad_o, input, target, fn);
  std::vector<py::ssize_t> shape(input.shape(), input.shape() + input.ndim());
  std::optional<py::array> losses = losses_arg(losses_o, red, shape, input, target, grad, fn);
  index_t bad = n;
  const double result = by_dtype(dt, [&](auto t) {
    using T = decltype(t);
    const T *pp = cptr<T>(input), *tp = cptr<T>(target);
    T* gp = ptr_or_null<T>(grad);
    T* lp = ptr_or_null<T>(losses);
    py::gil_scoped_release release;
    switch (K) {
      case Pointwise::Mse: return mse_loss<T>(n, pp, tp, red, lp, gp);
      case Pointwise::L1: return l1_loss<T>(n, pp, tp, red, lp, gp);
      case Pointwise::BceLogits: return bce_with_logits<T>(n, pp, tp, red, lp, gp);
      case Pointwise::Bce: return binary_cross_entropy<T>(n, pp, tp, red, lp, gp, &bad);
    }
    return 0.0;
  });
  if (bad < n) {
    const double v = dt == Dtype::F32 ? static_cast<double>(cptr<float>(input)[bad])
                                      : cptr<double>(input)[bad];
    throw py::value_error(std::string(fn) + ": input must hold probabilities in [0, 1], but input[" +
                          index_str(bad, shape) + "] is " + py::str(py::float_(v)).cast<std::string>() +
                          " (apply a sigmoid first, or use binary_cross_entropy_with_logits on "
                          "logits)");
  }
  return result;
}

// --- backward of a reduction-None loss -------------------------------------------

void scale_loss_grad_b(const py::array& grad, const py::array& grad_out, py::array& out,
                       bool class_axis) {
  const char* fn = "loss_backward";
  const Dtype dt = float_input(grad, fn, "grad");
  index_t N, C, S;
  std::vector<py::ssize_t> wshape;
  if (class_axis) {
    if (grad.ndim() < 2)
      throw py::value_error(std::string(fn) + ": grad must have shape (N, C, ...), got " +
                            shape_str(grad));
    N = grad.shape(0);
    C = grad.shape(1);
    S = 1;
    wshape.push_back(N);
    for (py::ssize_t d = 2; d < grad.ndim(); ++d) {
      S *= grad.shape(d);
      wshape.push_back(grad.shape(d));
    }
  } else {
    N = grad.size();
    C = 1;
    S = 1;
    wshape.assign(grad.shape(), grad.shape() + grad.ndim());
  }
  float_dtype(grad_out, fn, "grad_out");
  require_same_dtype(grad, "grad", grad_out, "grad_out", fn);
  require_shape(grad_out, wshape, fn, "grad_out");
  require_c_contiguous(grad_out, fn, "grad_out");
  out_like(out, "out", grad, "grad", fn);
  same_or_disjoint(out, "out", grad, "grad", fn);
  require_no_overlap(out, "out", grad_out, "grad_out", fn);
  by_dtype(dt, [&](auto t) {
    using T = decltype(t);
    const T *gp = cptr<T>(grad), *wp = cptr<T>(grad_out);
    T* op = mptr<T>(out);
    py::gil_scoped_release release;
    broadcast_scale<T>(N, C, S, gp, wp, op);
  });
}

}  // namespace

void register_loss(py::module_& m) {
  m.def("cross_entropy", &class_loss_b<false>, py::arg("input"), py::arg("target"),
        py::arg("grad") = py::none(), py::arg("reduction") = 0, py::arg("weight") = py::none(),
        py::arg("ignore_index") = -100, py::arg("losses") = py::none(),
        "fused softmax-cross-entropy over the class axis 1 of input (N, C, d1, ...): returns the "
        "loss (mean/sum) or writes losses (N, d1, ...) (none); writes d loss/d input into grad. "
        "target: int64 labels (N, d1, ...) or probabilities shaped like input.");
  m.def("nll_loss", &class_loss_b<true>, py::arg("input"), py::arg("target"),
        py::arg("grad") = py::none(), py::arg("reduction") = 0, py::arg("weight") = py::none(),
        py::arg("ignore_index") = -100, py::arg("losses") = py::none(),
        "negative log-likelihood of log-probabilities (N, C, d1, ...) at int64 labels (N, d1, ...).");
  m.def("mse_loss", &pointwise_loss_b<Pointwise::Mse>, py::arg("input"), py::arg("target"),
        py::arg("grad") = py::none(), py::arg("reduction") = 0, py::arg("losses") = py::none());
  m.def("l1_loss", &pointwise_loss_b<Pointwise::L1>, py::arg("input"), py::arg("target"),
        py::arg("grad") = py::none(), py::arg("reduction") = 0, py::arg("losses") = py::none());
  m.def("bce_with_logits", &pointwise_loss_b<Pointwise::BceLogits>, py::arg("input"),
        py::arg("target"), py::arg("grad") = py::none(), py::arg("reduction") = 0,
        py::arg("losses") = py::none());
  m.def("binary_cross_entropy", &pointwise_loss_b<Pointwise::Bce>, py::arg("input"),
        py::arg("target"), py::arg("grad") = py::none(), py::arg("reduction") = 0,
        py::arg("losses") = py::none(),
        "binary cross-entropy of probabilities in [0, 1] (logs clamped to >= -100, as PyTorch).");
  m.def("scale_loss_grad", &scale_loss_grad_b, py::arg("grad"), py::arg("grad_out"),
        py::arg("out"), py::arg("class_axis"),
        "out = grad * grad_out, grad_out broadcast over the class axis 1 when class_axis: the "
        "input gradient of a reduction-none loss given the upstream gradient of its losses.");
}

}  // namespace bind
}  // namespace neuropil
