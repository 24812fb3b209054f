// Bindings of nearest/bilinear resampling: validate, extract, release the GIL, call.
#include <cmath>
#include <string>

#include "checks.h"
#include "neuropil/resample.h"

namespace neuropil {
namespace bind {
namespace {

Interp to_mode(int mode, const char* fn) {
  if (mode != 0 && mode != 1)
    throw py::value_error(std::string(fn) + ": mode code must be 0 (nearest) or 1 (bilinear), "
                          "got " + std::to_string(mode));
  return static_cast<Interp>(mode);
}

void check_scale(double s, const char* fn, const char* name) {
  if (!std::isfinite(s))
    throw py::value_error(std::string(fn) + ": " + name + " must be finite (or <= 0 for none)");
}

// Validates big (N, C, H, W) against small-or-large partner shapes and returns the
// geometry; `in` is the (N, C, H, W) input side, `out` the (N, C, OH, OW) output side.
ResampleGeom geom(const py::array& in, const py::array& out, double scale_h, double scale_w,
                  bool align_corners, const char* fn, const char* in_name,
                  const char* out_name) {
  require_ndim(in, 4, fn, in_name, "(N, C, H, W)");
  require_ndim(out, 4, fn, out_name, "(N, C, OH, OW)");
  if (out.shape(0) != in.shape(0) || out.shape(1) != in.shape(1))
    throw py::value_error(std::string(fn) + ": " + out_name + " must have shape (" +
                          std::to_string(in.shape(0)) + ", " + std::to_string(in.shape(1)) +
                          ", OH, OW) like " + in_name + " " + shape_str(in) + ", got " +
                          shape_str(out));
  for (int i = 2; i < 4; ++i)
    if (in.shape(i) < 1 || out.shape(i) < 1)
      throw py::value_error(std::string(fn) + ": input and output sizes must be > 0, got " +
                            in_name + " " + shape_str(in) + " and " + out_name + " " +
                            shape_str(out));
  check_scale(scale_h, fn, "scale_h");
  check_scale(scale_w, fn, "scale_w");
  return ResampleGeom{in.shape(0), in.shape(1), in.shape(2), in.shape(3),
                      out.shape(2), out.shape(3), scale_h, scale_w, align_corners};
}

void upsample_forward_b(const py::array& x, py::array& out, int mode_code, double scale_h,
                        double scale_w, bool align_corners) {
  const char* fn = "interpolate";
  const Interp mode = to_mode(mode_code, fn);
  const Dtype dt = float_dtype(x, fn, "x");
  require_c_contiguous(x, fn, "x");
  const ResampleGeom g = geom(x, out, scale_h, scale_w, align_corners, fn, "x", "out");
  if (!out.dtype().equal(x.dtype()))
    throw py::type_error(std::string(fn) + ": out must be " + dtype_str(x) + " like x, got " +
                         dtype_str(out));
  require_writeable_out(out, fn, "out");
  require_no_overlap(out, "out", x, "x", fn);
  auto run = [&](auto t) {
    using T = decltype(t);
    const T* xp = static_cast<const T*>(x.data());
    T* yp = static_cast<T*>(out.mutable_data());
    py::gil_scoped_release release;
    upsample_forward<T>(xp, g, mode, yp);
  };
  if (dt == Dtype::F32) run(float{}); else run(double{});
}

void upsample_backward_b(const py::array& dy, py::array& dx, int mode_code, double scale_h,
                         double scale_w, bool align_corners) {
  const char* fn = "interpolate_backward";
  const Interp mode = to_mode(mode_code, fn);
  const Dtype dt = float_dtype(dy, fn, "grad_out");
  require_c_contiguous(dy, fn, "grad_out");
  const ResampleGeom g = geom(dx, dy, scale_h, scale_w, align_corners, fn, "grad_input",
                              "grad_out");
  if (!dx.dtype().equal(dy.dtype()))
    throw py::type_error(std::string(fn) + ": grad_input must be " + dtype_str(dy) +
                         " like grad_out, got " + dtype_str(dx));
  require_writeable_out(dx, fn, "grad_input");
  require_no_overlap(dx, "grad_input", dy, "grad_out", fn);
  auto run = [&](auto t) {
    using T = decltype(t);
    const T* gp = static_cast<const T*>(dy.data());
    T* dp = static_cast<T*>(dx.mutable_data());
    py::gil_scoped_release release;
    upsample_backward<T>(gp, g, mode, dp);
  };
  if (dt == Dtype::F32) run(float{}); else run(double{});
}

}  // namespace

void register_resample(py::module_& m) {
  m.def("upsample_forward", &upsample_forward_b, py::arg("x"), py::arg("out"), py::arg("mode"),
        py::arg("scale_h"), py::arg("scale_w"), py::arg("align_corners"),
        "out[N, C, OH, OW] = nearest (mode 0) or bilinear (mode 1) resampling of x[N, C, H, W] "
        "with PyTorch's index rules; scale_h/scale_w: the scale factors given to interpolate "
        "(<= 0: none, the ratio of sizes is used). See neuropil/resample.h.");
  m.def("upsample_backward", &upsample_backward_b, py::arg("grad_out"), py::arg("grad_input"),
        py::arg("mode"), py::arg("scale_h"), py::arg("scale_w"), py::arg("align_corners"),
        "grad_input[N, C, H, W] = adjoint of upsample_forward applied to grad_out (overwritten; "
        "deterministic).");
}

}  // namespace bind
}  // namespace neuropil
