// Bindings of conv2d / im2col / col2im: validate, extract, release the GIL, call.
#include <string>

#include "checks.h"
#include "neuropil/conv.h"

namespace neuropil {
namespace bind {
namespace {

using Pair = std::pair<index_t, index_t>;

std::string pair_str(Pair p) {
  return "(" + std::to_string(p.first) + ", " + std::to_string(p.second) + ")";
}

// Validates hyper-parameters and that the output is at least 1x1.
ConvGeom make_geom(const char* fn, index_t N, index_t C, index_t H, index_t W, index_t OC,
                   index_t KH, index_t KW, Pair stride, Pair padding, Pair dilation,
                   index_t groups = 1) {
  if (groups < 1 || groups > (index_t(1) << 40))
    throw py::value_error(std::string(fn) + ": groups must be a positive int, got " +
                          std::to_string(groups));
  if (C % groups != 0 || OC % groups != 0)
    throw py::value_error(std::string(fn) + ": groups=" + std::to_string(groups) +
                          " must divide both channel counts, got " + std::to_string(C) +
                          " and " + std::to_string(OC));
  if (stride.first < 1 || stride.second < 1)
    throw py::value_error(std::string(fn) + ": stride must be positive, got " + pair_str(stride));
  if (padding.first < 0 || padding.second < 0)
    throw py::value_error(std::string(fn) + ": padding must be >= 0, got " + pair_str(padding));
  if (dilation.first < 1 || dilation.second < 1)
    throw py::value_error(std::string(fn) + ": dilation must be positive, got " +
                          pair_str(dilation));
  if (KH < 1 || KW < 1)
    throw py::value_error(std::string(fn) + ": kernel size must be positive, got " +
                          pair_str({KH, KW}));
  const index_t big = index_t(1) << 40;
  if (N > big || C > big || H > big || W > big || OC > big || KH > big || KW > big ||
      stride.first > big || stride.second > big || padding.first > big ||
      padding.second > big || dilation.first > big || dilation.second > big)
    throw py::value_error(std::string(fn) + ": absurd size or hyper-parameter");
  ConvGeom g{N, C, H, W, OC, KH, KW, stride.first, stride.second, padding.first,
             padding.second, dilation.first, dilation.second};
  g.G = groups;
  const index_t eh = g.DH * (KH - 1) + 1, ew = g.DW * (KW - 1) + 1;
  if (H + 2 * g.PH < eh || W + 2 * g.PW < ew)
    throw py::value_error(
        std::string(fn) + ": the (dilated) kernel " + pair_str({eh, ew}) +
        " is larger than the padded input " + pair_str({H + 2 * g.PH, W + 2 * g.PW}) +
        "; the output would be empty");
  return g;
}

template <typename T>
const T* ptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <typename T>
T* mptr(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

void check_input(const py::array& a, Dtype dt, const py::array& ref, const char* fn,
                 const char* name, const char* ref_name, py::ssize_t ndim, const char* expected) {
  float_dtype(a, fn, name);
  require_same_dtype(ref, ref_name, a, name, fn);
  (void)dt;
  require_ndim(a, ndim, fn, name, expected);
  require_c_contiguous(a, fn, name);
}

void check_out(py::array& out, const py::array& ref, const std::vector<py::ssize_t>& shape,
               const char* fn, const char* name) {
  if (!out.dtype().equal(ref.dtype()))
    throw py::type_error(std::string(fn) + ": " + name + " must be " + dtype_str(ref) +
                         ", got " + dtype_str(out));
  require_shape(out, shape, fn, name);
  require_writeable_out(out, fn, name);
}

// weight (OC, C/groups, kH, kW) against x (N, C, H, W)
void check_weight_channels(const char* fn, const py::array& w, const py::array& x,
                           index_t groups) {
  if (groups >= 1 && w.shape(1) * groups != x.shape(1))
    throw py::value_error(std::string(fn) + ": weight " + shape_str(w) + " expects " +
                          std::to_string(w.shape(1) * groups) + " input channels (" +
                          std::to_string(w.shape(1)) + " per group x groups=" +
                          std::to_string(groups) + ") but x " + shape_str(x) + " has " +
                          std::to_string(x.shape(1)) + " (x is (N, C, H, W))");
}

void conv2d_forward_binding(const py::array& x, const py::array& w, const py::object& b,
                            py::array& out, Pair stride, Pair padding, Pair dilation,
                            index_t groups) {
  const char* fn = "conv2d";
  const Dtype dt = float_dtype(x, fn, "x");
  require_ndim(x, 4, fn, "x", "(N, C, H, W)");
  require_c_contiguous(x, fn, "x");
  check_input(w, dt, x, fn, "weight", "x", 4, "(out_channels, in_channels/groups, kH, kW)");
  check_weight_channels(fn, w, x, groups);
  ConvGeom g = make_geom(fn, x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0),
                         w.shape(2), w.shape(3), stride, padding, dilation, groups);
  py::array bias;
  const bool has_b = !b.is_none();
  if (has_b) {
    bias = b.cast<py::array>();
    check_input(bias, dt, x, fn, "bias", "x", 1, "(out_channels,)");
    require_shape(bias, {w.shape(0)}, fn, "bias");
  }
  check_out(out, x, {g.N, g.OC, g.OH(), g.OW()}, fn, "out");
  require_no_overlap(out, "out", x, "x", fn);
  require_no_overlap(out, "out", w, "weight", fn);
  if (has_b) require_no_overlap(out, "out", bias, "bias", fn);
  if (dt == Dtype::F32) {
    const float* bp = has_b ? ptr<float>(bias) : nullptr;
    const float *xp = ptr<float>(x), *wp = ptr<float>(w);
    float* yp = mptr<float>(out);
    py::gil_scoped_release release;
    conv2d_forward(xp, wp, bp, g, yp);
  } else {
    const double* bp = has_b ? ptr<double>(bias) : nullptr;
    const double *xp = ptr<double>(x), *wp = ptr<double>(w);
    double* yp = mptr<double>(out);
    py::gil_scoped_release release;
    conv2d_forward(xp, wp, bp, g, yp);
  }
}

// The rest of both backward bindings: the optional gradient outputs (each of
// the given shape, none overlapping an input or another output), then the
// kernel without the GIL. kernel(x, w, dy, dx, dw, db, beta) for float and double.
template <typename Kernel>
void run_backward(const char* fn, Dtype dt, const py::array& x, const py::array& w,
                  const py::array& dy, const py::object& dx_o, const py::object& dw_o,
                  const py::object& db_o, const std::vector<py::ssize_t>& dx_shape,
                  const std::vector<py::ssize_t>& dw_shape,
                  const std::vector<py::ssize_t>& db_shape, double beta, Kernel kernel) {
  py::array dx, dw, db;
  std::vector<py::array*> outs;
  auto take = [&](py::array& arr, const py::object& obj, const std::vector<py::ssize_t>& shape,
                  const char* name) {
    if (obj.is_none()) return;
    arr = py::cast<py::array>(obj);
    check_out(arr, x, shape, fn, name);
    outs.push_back(&arr);
  };
  take(dx, dx_o, dx_shape, "grad_input");
  take(dw, dw_o, dw_shape, "grad_weight");
  take(db, db_o, db_shape, "grad_bias");
  for (py::array* o : outs) {
    require_no_overlap(*o, "an output", x, "x", fn);
    require_no_overlap(*o, "an output", w, "weight", fn);
    require_no_overlap(*o, "an output", dy, "grad_out", fn);
    for (py::array* o2 : outs)
      if (o2 != o) require_no_overlap(*o, "an output", *o2, "another output", fn);
  }
  auto run = [&](auto zero) {
    using T = decltype(zero);
    const T *xp = ptr<T>(x), *wp = ptr<T>(w), *gp = ptr<T>(dy);
    T* dxp = dx_o.is_none() ? nullptr : mptr<T>(dx);
    T* dwp = dw_o.is_none() ? nullptr : mptr<T>(dw);
    T* dbp = db_o.is_none() ? nullptr : mptr<T>(db);
    py::gil_scoped_release release;
    kernel(xp, wp, gp, dxp, dwp, dbp, T(beta));
  };
  if (dt == Dtype::F32)
    run(0.0f);
  else
    run(0.0);
}

void conv2d_backward_binding(const py::array& x, const py::array& w, const py::array& dy,
                             const py::object& dx_o, const py::object& dw_o,
                             const py::object& db_o, Pair stride, Pair padding, Pair dilation,
                             index_t groups, double beta) {
  const char* fn = "conv2d_backward";
  const Dtype dt = float_dtype(x, fn, "x");
  require_ndim(x, 4, fn, "x", "(N, C, H, W)");
  require_c_contiguous(x, fn, "x");
  check_input(w, dt, x, fn, "weight", "x", 4, "(out_channels, in_channels/groups, kH, kW)");
  check_weight_channels(fn, w, x, groups);
  ConvGeom g = make_geom(fn, x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0),
                         w.shape(2), w.shape(3), stride, padding, dilation, groups);
  check_input(dy, dt, x, fn, "grad_out", "x", 4, "(N, out_channels, OH, OW)");
  require_shape(dy, {g.N, g.OC, g.OH(), g.OW()}, fn, "grad_out");
  run_backward(fn, dt, x, w, dy, dx_o, dw_o, db_o, {g.N, g.C, g.H, g.W},
               {g.OC, g.C / g.G, g.KH, g.KW}, {g.OC}, beta,
               [&g](auto x, auto w, auto dy, auto dx, auto dw, auto db, auto beta) {
                 conv2d_backward(x, w, dy, g, dx, dw, db, beta);
               });
}

// Transposed convolution: x (N, Cin, H, W), weight (Cin, Cout/groups, kH, kW),
// output (N, Cout, Ho, Wo) given by its array. The convolution it transposes
// has input (N, Cout, Ho, Wo) and output (N, Cin, H, W).
ConvGeom transpose_geom(const char* fn, const py::array& x, const py::array& w,
                        const py::array& y, Pair stride, Pair padding, Pair dilation,
                        index_t groups) {
  if (w.shape(0) != x.shape(1))
    throw py::value_error(std::string(fn) + ": weight " + shape_str(w) + " expects " +
                          std::to_string(w.shape(0)) + " input channels but x " + shape_str(x) +
                          " has " + std::to_string(x.shape(1)) + " (x is (N, C, H, W))");
  ConvGeom g = make_geom(fn, y.shape(0), y.shape(1), y.shape(2), y.shape(3), w.shape(0),
                         w.shape(2), w.shape(3), stride, padding, dilation, groups);
  if (y.shape(0) != x.shape(0) || y.shape(1) != w.shape(1) * groups || g.OH() != x.shape(2) ||
      g.OW() != x.shape(3))
    throw py::value_error(std::string(fn) + ": output " + shape_str(y) + " does not match x " +
                          shape_str(x) + " and weight " + shape_str(w) + " (out_channels = " +
                          std::to_string(w.shape(1) * groups) +
                          "; its size must map back onto x's with this stride, padding and "
                          "dilation: output_padding < stride)");
  return g;
}

void conv_transpose2d_forward_binding(const py::array& x, const py::array& w,
                                      const py::object& b, py::array& out, Pair stride,
                                      Pair padding, Pair dilation, index_t groups) {
  const char* fn = "conv_transpose2d";
  const Dtype dt = float_dtype(x, fn, "x");
  require_ndim(x, 4, fn, "x", "(N, C, H, W)");
  require_c_contiguous(x, fn, "x");
  check_input(w, dt, x, fn, "weight", "x", 4, "(in_channels, out_channels/groups, kH, kW)");
  if (out.ndim() != 4)
    throw py::value_error(std::string(fn) + ": out must be 4-D (N, C, H, W), got shape " +
                          shape_str(out));
  check_out(out, x, {out.shape(0), out.shape(1), out.shape(2), out.shape(3)}, fn, "out");
  require_c_contiguous(out, fn, "out");
  ConvGeom g = transpose_geom(fn, x, w, out, stride, padding, dilation, groups);
  py::array bias;
  const bool has_b = !b.is_none();
  if (has_b) {
    bias = b.cast<py::array>();
    check_input(bias, dt, x, fn, "bias", "x", 1, "(out_channels,)");
    require_shape(bias, {g.C}, fn, "bias");
    require_no_overlap(out, "out", bias, "bias", fn);
  }
  require_no_overlap(out, "out", x, "x", fn);
  require_no_overlap(out, "out", w, "weight", fn);
  if (dt == Dtype::F32) {
    const float* bp = has_b ? ptr<float>(bias) : nullptr;
    const float *xp = ptr<float>(x), *wp = ptr<float>(w);
    float* yp = mptr<float>(out);
    py::gil_scoped_release release;
    conv_transpose2d_forward(xp, wp, bp, g, yp);
  } else {
    const double* bp = has_b ? ptr<double>(bias) : nullptr;
    const double *xp = ptr<double>(x), *wp = ptr<double>(w);
    double* yp = mptr<double>(out);
    py::gil_scoped_release release;
    conv_transpose2d_forward(xp, wp, bp, g, yp);
  }
}

void conv_transpose2d_backward_binding(const py::array& x, const py::array& w,
                                       const py::array& dy, const py::object& dx_o,
                                       const py::object& dw_o, const py::object& db_o,
                                       Pair stride, Pair padding, Pair dilation, index_t groups,
                                       double beta) {
  const char* fn = "conv_transpose2d_backward";
  const Dtype dt = float_dtype(x, fn, "x");
  require_ndim(x, 4, fn, "x", "(N, C, H, W)");
  require_c_contiguous(x, fn, "x");
  check_input(w, dt, x, fn, "weight", "x", 4, "(in_channels, out_channels/groups, kH, kW)");
  check_input(dy, dt, x, fn, "grad_out", "x", 4, "(N, out_channels, OH, OW)");
  ConvGeom g = transpose_geom(fn, x, w, dy, stride, padding, dilation, groups);
  run_backward(fn, dt, x, w, dy, dx_o, dw_o, db_o,
               {x.shape(0), x.shape(1), x.shape(2), x.shape(3)},
               {w.shape(0), w.shape(1), w.shape(2), w.shape(3)}, {g.C}, beta,
               [&g](auto x, auto w, auto dy, auto dx, auto dw, auto db, auto beta) {
                 conv_transpose2d_backward(x, w, dy, g, dx, dw, db, beta);
               });
}

void im2col_binding(const py::array& x, py::array& out, Pair kernel, Pair stride, Pair padding,
                    Pair dilation) {
  const char* fn = "im2col";
  const Dtype dt = float_dtype(x, fn, "x");
  require_ndim(x, 4, fn, "x", "(N, C, H, W)");
  require_c_contiguous(x, fn, "x");
  ConvGeom g = make_geom(fn, x.shape(0), x.shape(1), x.shape(2), x.shape(3), 1, kernel.first,
                         kernel.second, stride, padding, dilation);
  check_out(out, x, {g.N, g.K(), g.OH() * g.OW()}, fn, "out");
  require_no_overlap(out, "out", x, "x", fn);
  if (dt == Dtype::F32) {
    const float* xp = ptr<float>(x);
    float* op = mptr<float>(out);
    py::gil_scoped_release release;
    im2col(xp, g, op);
  } else {
    const double* xp = ptr<double>(x);
    double* op = mptr<double>(out);
    py::gil_scoped_release release;
    im2col(xp, g, op);
  }
}

void col2im_binding(const py::array& cols, py::array& out, Pair kernel, Pair stride,
                    Pair padding, Pair dilation) {
  const char* fn = "col2im";
  const Dtype dt = float_dtype(cols, fn, "cols");
  require_ndim(cols, 3, fn, "cols", "(N, C*kH*kW, OH*OW)");
  require_c_contiguous(cols, fn, "cols");
  if (out.ndim() != 4)
    throw py::value_error(std::string(fn) + ": out must be 4-D (N, C, H, W), got shape " +
                          shape_str(out));
  ConvGeom g = make_geom(fn, out.shape(0), out.shape(1), out.shape(2), out.shape(3), 1,
                         kernel.first, kernel.second, stride, padding, dilation);
  require_shape(cols, {g.N, g.K(), g.OH() * g.OW()}, fn, "cols");
  check_out(out, cols, {g.N, g.C, g.H, g.W}, fn, "out");
  require_no_overlap(out, "out", cols, "cols", fn);
  if (dt == Dtype::F32) {
    const float* cp = ptr<float>(cols);
    float* op = mptr<float>(out);
    py::gil_scoped_release release;
    col2im(cp, g, op);
  } else {
    const double* cp = ptr<double>(cols);
    double* op = mptr<double>(out);
    py::gil_scoped_release release;
    col2im(cp, g, op);
  }
}

}  // namespace

void register_conv(py::module_& m) {
  m.def("conv2d_forward", &conv2d_forward_binding, py::arg("x"), py::arg("weight"),
        py::arg("bias"), py::arg("out"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups") = 1,
        "out[N, OC, OH, OW] = conv2d(x[N, C, H, W], weight[OC, C/groups, kH, kW]) + bias[OC], "
        "in place.");
  m.def("conv2d_backward", &conv2d_backward_binding, py::arg("x"), py::arg("weight"),
        py::arg("grad_out"), py::arg("grad_input"), py::arg("grad_weight"),
        py::arg("grad_bias"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups") = 1, py::arg("beta") = 0.0,
        "Gradients of conv2d; each output may be None. grad_input is overwritten; "
        "grad_weight/grad_bias = beta * old + gradient.");
  m.def("conv_transpose2d_forward", &conv_transpose2d_forward_binding, py::arg("x"),
        py::arg("weight"), py::arg("bias"), py::arg("out"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups") = 1,
        "out[N, Cout, Ho, Wo] = conv_transpose2d(x[N, Cin, H, W], weight[Cin, Cout/groups, kH, "
        "kW]) + bias[Cout], in place (out's shape sets the output size).");
  m.def("conv_transpose2d_backward", &conv_transpose2d_backward_binding, py::arg("x"),
        py::arg("weight"), py::arg("grad_out"), py::arg("grad_input"), py::arg("grad_weight"),
        py::arg("grad_bias"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups") = 1, py::arg("beta") = 0.0,
        "Gradients of conv_transpose2d; each output may be None. grad_input is overwritten; "
        "grad_weight/grad_bias = beta * old + gradient.");
  m.def("im2col", &im2col_binding, py::arg("x"), py::arg("out"), py::arg("kernel"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        "out[N, C*kH*kW, OH*OW] = im2col(x[N, C, H, W]), in place.");
  m.def("col2im", &col2im_binding, py::arg("cols"), py::arg("out"), py::arg("kernel"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        "out[N, C, H, W] = col2im(cols[N, C*kH*kW, OH*OW]) (adjoint of im2col), in place.");
}

}  // namespace bind
}  // namespace neuropil
