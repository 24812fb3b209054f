// Bindings of the fused optimizer updates: validate, extract, release the GIL, call.
#include <string>

#include "checks.h"
#include "neuropil/optim.h"

namespace neuropil {
namespace bind {
namespace {

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

// param is written in place; `state` arrays likewise; grad is read only.
void check_update_args(const char* fn, const py::array& param, const py::array& grad,
                       const std::vector<std::pair<const py::array*, const char*>>& state) {
  float_dtype(param, fn, "param");
  require_same_dtype(param, "param", grad, "grad", fn);
  require_writeable_out(param, fn, "param");
  require_shape(grad, shape_of(param), fn, "grad");
  require_c_contiguous(grad, fn, "grad");
  require_no_overlap(param, "param", grad, "grad", fn);
  for (std::size_t i = 0; i < state.size(); ++i) {
    const py::array& s = *state[i].first;
    const char* name = state[i].second;
    require_same_dtype(param, "param", s, name, fn);
    require_shape(s, shape_of(param), fn, name);
    require_writeable_out(s, fn, name);
    require_no_overlap(s, name, param, "param", fn);
    require_no_overlap(s, name, grad, "grad", fn);
    for (std::size_t j = 0; j < i; ++j)
      require_no_overlap(s, name, *state[j].first, state[j].second, fn);
  }
}

template <typename T>
void call_sgd(py::array& param, const py::array& grad, py::array* buf, double lr,
              double momentum, double dampening, double weight_decay, double l1, bool nesterov,
              bool first_step) {
  const index_t n = static_cast<index_t>(param.size());
  T* w = static_cast<T*>(param.mutable_data());
  const T* g = static_cast<const T*>(grad.data());
  T* b = buf ? static_cast<T*>(buf->mutable_data()) : nullptr;
  py::gil_scoped_release release;
  sgd_update(n, g, T(lr), T(momentum), T(dampening), T(weight_decay), T(l1), nesterov,
             first_step, w, b);
}

void sgd_binding(py::array& param, const py::array& grad, py::object momentum_buf, double lr,
                 double momentum, double dampening, double weight_decay, double l1,
                 bool nesterov, bool first_step) {
  const char* fn = "sgd_update_";
  py::array buf;
  std::vector<std::pair<const py::array*, const char*>> state;
  if (momentum != 0.0) {
    if (momentum_buf.is_none())
      throw py::value_error(std::string(fn) + ": momentum=" + std::to_string(momentum) +
                            " needs momentum_buf (an array shaped like param)");
    if (!py::isinstance<py::array>(momentum_buf))
      throw py::type_error(std::string(fn) + ": momentum_buf must be a numpy.ndarray");
    buf = momentum_buf.cast<py::array>();
    state.emplace_back(&buf, "momentum_buf");
  }
  check_update_args(fn, param, grad, state);
  py::array* bp = momentum != 0.0 ? &buf : nullptr;
  if (float_dtype(param, fn, "param") == Dtype::F32)
    call_sgd<float>(param, grad, bp, lr, momentum, dampening, weight_decay, l1, nesterov,
                    first_step);
  else
    call_sgd<double>(param, grad, bp, lr, momentum, dampening, weight_decay, l1, nesterov,
                     first_step);
}

template <typename T>
void call_adam(py::array& param, const py::array& grad, py::array& m, py::array& v,
               py::array* vmax, double lr, double beta1, double beta2, double eps,
               double weight_decay, index_t step) {
  const index_t n = static_cast<index_t>(param.size());
  T* w = static_cast<T*>(param.mutable_data());
  const T* g = static_cast<const T*>(grad.data());
  T* mp = static_cast<T*>(m.mutable_data());
  T* vp = static_cast<T*>(v.mutable_data());
  T* vmp = vmax ? static_cast<T*>(vmax->mutable_data()) : nullptr;
  py::gil_scoped_release release;
  adam_update(n, g, T(lr), T(beta1), T(beta2), T(eps), T(weight_decay), step, w, mp, vp, vmp);
}

void adam_binding(py::array& param, const py::array& grad, py::array& exp_avg,
                  py::array& exp_avg_sq, py::object max_exp_avg_sq, double lr, double beta1,
                  double beta2, double eps, double weight_decay, index_t step) {
  const char* fn = "adam_update_";
  if (step < 1)
    throw py::value_error(std::string(fn) + ": step must be >= 1 (the count of updates "
                          "including this one), got " + std::to_string(step));
  std::vector<std::pair<const py::array*, const char*>> state{{&exp_avg, "exp_avg"},
                                                              {&exp_avg_sq, "exp_avg_sq"}};
  py::array vmax;
  if (!max_exp_avg_sq.is_none()) {
    if (!py::isinstance<py::array>(max_exp_avg_sq))
      throw py::type_error(std::string(fn) + ": max_exp_avg_sq must be a numpy.ndarray or None");
    vmax = max_exp_avg_sq.cast<py::array>();
    state.emplace_back(&vmax, "max_exp_avg_sq");
  }
  check_update_args(fn, param, grad, state);
  py::array* vp = max_exp_avg_sq.is_none() ? nullptr : &vmax;
  if (float_dtype(param, fn, "param") == Dtype::F32)
    call_adam<float>(param, grad, exp_avg, exp_avg_sq, vp, lr, beta1, beta2, eps, weight_decay,
                     step);
  else
    call_adam<double>(param, grad, exp_avg, exp_avg_sq, vp, lr, beta1, beta2, eps, weight_decay,
                      step);
}

}  // namespace

void register_optim(py::module_& m) {
  m.def("sgd_update", &sgd_binding, py::arg("param").noconvert(), py::arg("grad").noconvert(),
        py::arg("momentum_buf"), py::arg("lr"), py::arg("momentum"), py::arg("dampening"),
        py::arg("weight_decay"), py::arg("l1"), py::arg("nesterov"), py::arg("first_step"),
        "One SGD step on param, in place (see neuropil/optim.h for the formula).");
  m.def("adam_update", &adam_binding, py::arg("param").noconvert(),
        py::arg("grad").noconvert(), py::arg("exp_avg").noconvert(),
        py::arg("exp_avg_sq").noconvert(), py::arg("max_exp_avg_sq"), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("step"),
        "One Adam/AMSGrad step on param, in place (see neuropil/optim.h for the formula).");
}

}  // namespace bind
}  // namespace neuropil
