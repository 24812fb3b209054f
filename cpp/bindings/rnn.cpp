// Bindings of the recurrent kernels, embedding and gradient-norm helpers:
// validate, extract, release the GIL, call (STYLE rule 6).
#include <string>

#include "checks.h"
#include "neuropil/rnn.h"

namespace neuropil {
namespace bind {
namespace {

CellKind parse_mode(const std::string& mode, const char* fn) {
  if (mode == "rnn_tanh") return CellKind::RnnTanh;
  if (mode == "rnn_relu") return CellKind::RnnRelu;
  if (mode == "lstm") return CellKind::Lstm;
  if (mode == "gru") return CellKind::Gru;
  throw py::value_error(std::string(fn) + ": mode must be 'rnn_tanh', 'rnn_relu', 'lstm' or "
                        "'gru', got '" + mode + "'");
}

// An array argument that must share x's dtype, have `shape`, be C-contiguous
// (and writeable when it is an output).
void check_array(const py::array& a, const py::array& ref, const std::vector<py::ssize_t>& shape,
                 const char* fn, const char* name, bool output) {
  float_dtype(a, fn, name);
  require_same_dtype(a, name, ref, "x", fn);
  require_shape(a, shape, fn, name);
  if (output)
    require_writeable_out(a, fn, name);
  else
    require_c_contiguous(a, fn, name);
}

template <typename T>
const T* cptr(const py::object& o) {
  return o.is_none() ? nullptr : static_cast<const T*>(o.cast<py::array>().data());
}
template <typename T>
T* mptr(const py::object& o) {
  return o.is_none() ? nullptr : static_cast<T*>(o.cast<py::array>().mutable_data());
}

py::array as_array(const py::object& o, const char* fn, const char* name) {
  if (!py::isinstance<py::array>(o))
    throw py::type_error(std::string(fn) + ": " + name + " must be a numpy.ndarray, got " +
                         py::str(py::type::of(o).attr("__name__")).cast<std::string>());
  return o.cast<py::array>();
}

void check_optional(const py::object& o, const py::array& ref,
                    const std::vector<py::ssize_t>& shape, const char* fn, const char* name,
                    bool output) {
  if (o.is_none()) return;
  check_array(as_array(o, fn, name), ref, shape, fn, name, output);
}

void check_lengths(const py::object& o, index_t N, index_t T, const char* fn) {
  if (o.is_none()) return;
  py::array a = as_array(o, fn, "lengths");
  if (!a.dtype().equal(py::dtype::of<std::int64_t>()))
    throw py::type_error(std::string(fn) + ": lengths must be int64, got " + dtype_str(a));
  require_shape(a, {N}, fn, "lengths");
  require_c_contiguous(a, fn, "lengths");
  const std::int64_t* p = static_cast<const std::int64_t*>(a.data());
  for (index_t n = 0; n < N; ++n)
    if (p[n] < 0 || p[n] > T)
      throw py::value_error(std::string(fn) + ": lengths[" + std::to_string(n) + "] = " +
                            std::to_string(p[n]) + " is outside [0, T=" + std::to_string(T) +
                            "]");
}

void no_overlap(const py::object& out, const char* out_name, const py::object& in,
                const char* in_name, const char* fn) {
  if (out.is_none() || in.is_none()) return;
  require_no_overlap(out.cast<py::array>(), out_name, in.cast<py::array>(), in_name, fn);
}

struct Dims {
  CellKind kind;
  index_t N, T, I, H, G, C;
};

// Shared checks of x and the weights; returns the sizes.
Dims check_core(const std::string& mode, const py::array& x, const py::array& w_ih,
                const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
                bool batch_first, const char* fn) {
  Dims d;
  d.kind = parse_mode(mode, fn);
  d.G = cell_gates(d.kind);
  d.C = cell_cache_width(d.kind);
  float_dtype(x, fn, "x");
  require_ndim(x, 3, fn, "x", batch_first ? "(N, T, input_size)" : "(T, N, input_size)");
  require_c_contiguous(x, fn, "x");
  d.N = batch_first ? x.shape(0) : x.shape(1);
  d.T = batch_first ? x.shape(1) : x.shape(0);
  d.I = x.shape(2);
  float_dtype(w_hh, fn, "w_hh");
  require_same_dtype(w_hh, "w_hh", x, "x", fn);
  require_ndim(w_hh, 2, fn, "w_hh", "(gates*hidden, hidden)");
  d.H = w_hh.shape(1);
  if (d.H < 1)
    throw py::value_error(std::string(fn) + ": hidden size must be at least 1, got w_hh shape " +
                          shape_str(w_hh));
  check_array(w_hh, x, {d.G * d.H, d.H}, fn, "w_hh", false);
  check_array(w_ih, x, {d.G * d.H, d.I}, fn, "w_ih", false);
  check_optional(b_ih, x, {d.G * d.H}, fn, "b_ih", false);
  check_optional(b_hh, x, {d.G * d.H}, fn, "b_hh", false);
  return d;
}

std::vector<py::ssize_t> seq_shape(const Dims& d, bool batch_first, index_t F) {
  return batch_first ? std::vector<py::ssize_t>{d.N, d.T, F} : std::vector<py::ssize_t>{d.T, d.N, F};
}

void check_seq_out(const py::array& y, const Dims& d, bool batch_first, index_t col,
                   const py::array& x, const char* fn, const char* name) {
  float_dtype(y, fn, name);
  require_same_dtype(y, name, x, "x", fn);
  require_ndim(y, 3, fn, name, batch_first ? "(N, T, features)" : "(T, N, features)");
  const index_t n0 = batch_first ? d.N : d.T, n1 = batch_first ? d.T : d.N;
  if (y.shape(0) != n0 || y.shape(1) != n1 || col < 0 || y.shape(2) < col + d.H)
    throw py::value_error(std::string(fn) + ": " + name + " must have shape (" +
                          std::to_string(n0) + ", " + std::to_string(n1) + ", >= " +
                          std::to_string(col + d.H) + ") for column offset " +
                          std::to_string(col) + ", got " + shape_str(y));
}

template <typename T>
void forward_call(const Dims& d, bool batch_first, bool reverse, const py::array& x,
                  const py::array& w_ih, const py::array& w_hh, const py::object& b_ih,
                  const py::object& b_hh, const py::object& h0, const py::object& c0,
                  const py::object& lengths, py::array& y, index_t y_col, py::array& h_n,
                  const py::object& c_n, py::array& gates, py::array& xh,
                  const py::object& c_prev, const py::object& tanh_c) {
  SeqDims sd{d.N, d.T, d.I, d.H, batch_first, reverse};
  RecurrentWeights<T> w{static_cast<const T*>(w_ih.data()), static_cast<const T*>(w_hh.data()),
                        cptr<T>(b_ih), cptr<T>(b_hh)};
  RecurrentCache<T> cache{static_cast<T*>(gates.mutable_data()),
                          static_cast<T*>(xh.mutable_data()), mptr<T>(c_prev),
                          mptr<T>(tanh_c)};
  const T* X = static_cast<const T*>(x.data());
  const T* H0 = cptr<T>(h0);
  const T* C0 = cptr<T>(c0);
  const std::int64_t* L = lengths.is_none()
                              ? nullptr
                              : static_cast<const std::int64_t*>(lengths.cast<py::array>().data());
  T* Y = static_cast<T*>(y.mutable_data()) + y_col;
  const index_t ldy = y.shape(2);
  T* HN = static_cast<T*>(h_n.mutable_data());
  T* CN = mptr<T>(c_n);
  py::gil_scoped_release release;
  recurrent_forward(d.kind, sd, X, w, H0, C0, L, Y, ldy, HN, CN, cache);
}

void rnn_forward_binding(const std::string& mode, const py::array& x, const py::array& w_ih,
                         const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
                         const py::object& h0, const py::object& c0, const py::object& lengths,
                         py::array& y, index_t y_col, py::array& h_n, const py::object& c_n,
                         py::array& gates, py::array& xh, const py::object& c_prev,
                         const py::object& tanh_c, bool batch_first, bool reverse) {
  const char* fn = "rnn_forward";
  const Dims d = check_core(mode, x, w_ih, w_hh, b_ih, b_hh, batch_first, fn);
  const bool lstm = d.kind == CellKind::Lstm;
  check_optional(h0, x, {d.N, d.H}, fn, "h0", false);
  if (lstm) {
    check_optional(c0, x, {d.N, d.H}, fn, "c0", false);
    if (c_n.is_none() || c_prev.is_none() || tanh_c.is_none())
      throw py::value_error(std::string(fn) + ": mode 'lstm' needs c_n, c_prev and tanh_c");
  } else if (!c0.is_none() || !c_n.is_none()) {
    throw py::value_error(std::string(fn) + ": c0/c_n are for mode 'lstm' only");
  }
  check_lengths(lengths, d.N, d.T, fn);
  check_seq_out(y, d, batch_first, y_col, x, fn, "y");
  require_writeable_out(y, fn, "y");
  check_array(h_n, x, {d.N, d.H}, fn, "h_n", true);
  check_optional(c_n, x, {d.N, d.H}, fn, "c_n", true);
  const index_t rows = d.N * d.T;
  check_array(gates, x, {rows, d.C * d.H}, fn, "gates", true);
  check_array(xh, x, {rows, d.I + d.H + 1}, fn, "xh", true);
  check_optional(c_prev, x, {rows, d.H}, fn, "c_prev", true);
  check_optional(tanh_c, x, {rows, d.H}, fn, "tanh_c", true);
  const py::object xo = x, wi = w_ih, wh = w_hh, yo = y, hno = h_n, go = gates, xho = xh;
  const std::pair<py::object, const char*> outs[] = {
      {yo, "y"}, {hno, "h_n"}, {c_n, "c_n"}, {go, "gates"}, {xho, "xh"},
      {c_prev, "c_prev"}, {tanh_c, "tanh_c"}};
  const std::pair<py::object, const char*> ins[] = {
      {xo, "x"}, {wi, "w_ih"}, {wh, "w_hh"}, {b_ih, "b_ih"}, {b_hh, "b_hh"}, {h0, "h0"},
      {c0, "c0"}};
  for (auto& o : outs) {
    for (auto& i : ins) no_overlap(o.first, o.second, i.first, i.second, fn);
    for (auto& o2 : outs)
      if (&o2 < &o) no_overlap(o.first, o.second, o2.first, o2.second, fn);
  }
  if (float_dtype(x, fn, "x") == Dtype::F32)
    forward_call<float>(d, batch_first, reverse, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, y,
                        y_col, h_n, c_n, gates, xh, c_prev, tanh_c);
  else
    forward_call<double>(d, batch_first, reverse, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, y,
                         y_col, h_n, c_n, gates, xh, c_prev, tanh_c);
}

template <typename T>
void backward_call(const Dims& d, bool batch_first, bool reverse, const py::array& x,
                   const py::array& w_ih, const py::array& w_hh, const py::object& lengths,
                   const py::array& gates, const py::array& xh, const py::object& c_prev,
                   const py::object& tanh_c, const py::object& dy, index_t dy_col,
                   const py::object& dh_n, const py::object& dc_n, py::array& dg,
                   const py::object& dgh, const py::object& dx, bool dx_accumulate,
                   py::array& dh0, const py::object& dc0, py::array& dw_ih, py::array& dw_hh,
                   const py::object& db_ih, const py::object& db_hh) {
  SeqDims sd{d.N, d.T, d.I, d.H, batch_first, reverse};
  RecurrentWeights<T> w{static_cast<const T*>(w_ih.data()), static_cast<const T*>(w_hh.data()),
                        nullptr, nullptr};
  RecurrentCache<T> cache{const_cast<T*>(static_cast<const T*>(gates.data())),
                          const_cast<T*>(static_cast<const T*>(xh.data())), mptr<T>(c_prev),
                          mptr<T>(tanh_c)};
  const std::int64_t* L = lengths.is_none()
                              ? nullptr
                              : static_cast<const std::int64_t*>(lengths.cast<py::array>().data());
  const T* DY = dy.is_none() ? nullptr : cptr<T>(dy) + dy_col;
  const index_t ldy = dy.is_none() ? 0 : dy.cast<py::array>().shape(2);
  const T* X = static_cast<const T*>(x.data());
  const T* DHN = cptr<T>(dh_n);
  const T* DCN = cptr<T>(dc_n);
  T* DG = static_cast<T*>(dg.mutable_data());
  T* DGH = mptr<T>(dgh);
  T* DX = mptr<T>(dx);
  T* DH0 = static_cast<T*>(dh0.mutable_data());
  T* DC0 = mptr<T>(dc0);
  T* DWI = static_cast<T*>(dw_ih.mutable_data());
  T* DWH = static_cast<T*>(dw_hh.mutable_data());
  T* DBI = mptr<T>(db_ih);
  T* DBH = mptr<T>(db_hh);
  py::gil_scoped_release release;
  recurrent_backward(d.kind, sd, X, w, L, cache, DY, ldy, DHN, DCN, DG, DGH, DX, dx_accumulate,
                     DH0, DC0, DWI, DWH, DBI, DBH);
}

void rnn_backward_binding(const std::string& mode, const py::array& x, const py::array& w_ih,
                          const py::array& w_hh, const py::object& lengths,
                          const py::array& gates, const py::array& xh,
                          const py::object& c_prev, const py::object& tanh_c,
                          const py::object& dy, index_t dy_col, const py::object& dh_n,
                          const py::object& dc_n, py::array& dg, const py::object& dgh,
                          const py::object& dx, bool dx_accumulate, py::array& dh0,
                          const py::object& dc0, py::array& dw_ih, py::array& dw_hh,
                          const py::object& db_ih, const py::object& db_hh, bool batch_first,
                          bool reverse) {
  const char* fn = "rnn_backward";
  const Dims d = check_core(mode, x, w_ih, w_hh, py::none(), py::none(), batch_first, fn);
  const bool lstm = d.kind == CellKind::Lstm, gru = d.kind == CellKind::Gru;
  const index_t rows = d.N * d.T, GH = d.G * d.H;
  check_lengths(lengths, d.N, d.T, fn);
  check_array(gates, x, {rows, d.C * d.H}, fn, "gates", false);
  check_array(xh, x, {rows, d.I + d.H + 1}, fn, "xh", false);
  if (lstm && (c_prev.is_none() || tanh_c.is_none() || dc0.is_none()))
    throw py::value_error(std::string(fn) + ": mode 'lstm' needs c_prev, tanh_c and dc0");
  if (!lstm && (!dc0.is_none() || !dc_n.is_none()))
    throw py::value_error(std::string(fn) + ": dc_n/dc0 are for mode 'lstm' only");
  if (gru && dgh.is_none())
    throw py::value_error(std::string(fn) + ": mode 'gru' needs the dgh scratch");
  check_optional(c_prev, x, {rows, d.H}, fn, "c_prev", false);
  check_optional(tanh_c, x, {rows, d.H}, fn, "tanh_c", false);
  if (!dy.is_none()) {
    py::array a = as_array(dy, fn, "dy");
    check_seq_out(a, d, batch_first, dy_col, x, fn, "dy");
    require_c_contiguous(a, fn, "dy");
  }
  check_optional(dh_n, x, {d.N, d.H}, fn, "dh_n", false);
  check_optional(dc_n, x, {d.N, d.H}, fn, "dc_n", false);
  check_array(dg, x, {rows, GH}, fn, "dg", true);
  check_optional(dgh, x, {rows, GH}, fn, "dgh", true);
  check_optional(dx, x, seq_shape(d, batch_first, d.I), fn, "dx", true);
  check_array(dh0, x, {d.N, d.H}, fn, "dh0", true);
  check_optional(dc0, x, {d.N, d.H}, fn, "dc0", true);
  check_array(dw_ih, x, {GH, d.I}, fn, "dw_ih", true);
  check_array(dw_hh, x, {GH, d.H}, fn, "dw_hh", true);
  check_optional(db_ih, x, {GH}, fn, "db_ih", true);
  check_optional(db_hh, x, {GH}, fn, "db_hh", true);
  const py::object xo = x, wi = w_ih, wh = w_hh, go = gates, hpo = xh, dgo = dg, dh0o = dh0,
                   dwio = dw_ih, dwho = dw_hh;
  const std::pair<py::object, const char*> outs[] = {
      {dgo, "dg"}, {dgh, "dgh"}, {dx, "dx"}, {dh0o, "dh0"}, {dc0, "dc0"}, {dwio, "dw_ih"},
      {dwho, "dw_hh"}, {db_ih, "db_ih"}, {db_hh, "db_hh"}};
  const std::pair<py::object, const char*> ins[] = {
      {xo, "x"}, {wi, "w_ih"}, {wh, "w_hh"}, {go, "gates"}, {hpo, "xh"}, {c_prev, "c_prev"},
      {tanh_c, "tanh_c"}, {dy, "dy"}, {dh_n, "dh_n"}, {dc_n, "dc_n"}};
  for (auto& o : outs) {
    for (auto& i : ins) no_overlap(o.first, o.second, i.first, i.second, fn);
    for (auto& o2 : outs)
      if (&o2 < &o) no_overlap(o.first, o.second, o2.first, o2.second, fn);
  }
  if (float_dtype(x, fn, "x") == Dtype::F32)
    backward_call<float>(d, batch_first, reverse, x, w_ih, w_hh, lengths, gates, xh, c_prev,
                         tanh_c, dy, dy_col, dh_n, dc_n, dg, dgh, dx, dx_accumulate, dh0, dc0,
                         dw_ih, dw_hh, db_ih, db_hh);
  else
    backward_call<double>(d, batch_first, reverse, x, w_ih, w_hh, lengths, gates, xh,
                          c_prev, tanh_c, dy, dy_col, dh_n, dc_n, dg, dgh, dx, dx_accumulate,
                          dh0, dc0, dw_ih, dw_hh, db_ih, db_hh);
}

void check_indices(const py::array& idx, index_t V, const char* fn) {
  if (!idx.dtype().equal(py::dtype::of<std::int64_t>()))
    throw py::type_error(std::string(fn) + ": indices must be int64, got " + dtype_str(idx));
  require_c_contiguous(idx, fn, "indices");
  const std::int64_t* p = static_cast<const std::int64_t*>(idx.data());
  for (py::ssize_t i = 0; i < idx.size(); ++i)
    if (p[i] < 0 || p[i] >= V)
      throw py::value_error(std::string(fn) + ": index " + std::to_string(p[i]) +
                            " at flat position " + std::to_string(i) + " is outside [0, " +
                            std::to_string(V) + ")");
}

void embedding_forward_binding(const py::array& weight, const py::array& indices,
                               py::array& out) {
  const char* fn = "embedding_forward";
  const Dtype dt = float_dtype(weight, fn, "weight");
  require_ndim(weight, 2, fn, "weight", "(num_embeddings, embedding_dim)");
  require_c_contiguous(weight, fn, "weight");
  const index_t V = weight.shape(0), E = weight.shape(1), M = indices.size();
  check_indices(indices, V, fn);
  float_dtype(out, fn, "out");
  require_same_dtype(out, "out", weight, "weight", fn);
  if (out.size() != M * E || (out.ndim() > 0 && out.shape(out.ndim() - 1) != E))
    throw py::value_error(std::string(fn) + ": out must have shape indices.shape + (" +
                          std::to_string(E) + ",), got " + shape_str(out));
  require_writeable_out(out, fn, "out");
  require_no_overlap(out, "out", weight, "weight", fn);
  const std::int64_t* I = static_cast<const std::int64_t*>(indices.data());
  if (dt == Dtype::F32) {
    const float* W = static_cast<const float*>(weight.data());
    float* O = static_cast<float*>(out.mutable_data());
    py::gil_scoped_release release;
    embedding_forward(W, I, M, E, O);
  } else {
    const double* W = static_cast<const double*>(weight.data());
    double* O = static_cast<double*>(out.mutable_data());
    py::gil_scoped_release release;
    embedding_forward(W, I, M, E, O);
  }
}

void embedding_backward_binding(const py::array& dout, const py::array& indices,
                                py::array& dweight) {
  const char* fn = "embedding_backward";
  const Dtype dt = float_dtype(dweight, fn, "dweight");
  require_ndim(dweight, 2, fn, "dweight", "(num_embeddings, embedding_dim)");
  require_writeable_out(dweight, fn, "dweight");
  const index_t V = dweight.shape(0), E = dweight.shape(1), M = indices.size();
  check_indices(indices, V, fn);
  float_dtype(dout, fn, "dout");
  require_same_dtype(dout, "dout", dweight, "dweight", fn);
  require_c_contiguous(dout, fn, "dout");
  // exactly indices.shape + (E,): a dout of another shape with the same size
  // would be read in an order the caller did not mean
  bool dout_ok = dout.ndim() == indices.ndim() + 1 && dout.shape(dout.ndim() - 1) == E;
  for (py::ssize_t d = 0; dout_ok && d < indices.ndim(); ++d)
    dout_ok = dout.shape(d) == indices.shape(d);
  if (!dout_ok)
    throw py::value_error(std::string(fn) + ": dout must have shape indices.shape + (" +
                          std::to_string(E) + ",), got " + shape_str(dout));
  require_no_overlap(dweight, "dweight", dout, "dout", fn);
  const std::int64_t* I = static_cast<const std::int64_t*>(indices.data());
  if (dt == Dtype::F32) {
    const float* D = static_cast<const float*>(dout.data());
    float* W = static_cast<float*>(dweight.mutable_data());
    py::gil_scoped_release release;
    embedding_backward(D, I, M, E, W);
  } else {
    const double* D = static_cast<const double*>(dout.data());
    double* W = static_cast<double*>(dweight.mutable_data());
    py::gil_scoped_release release;
    embedding_backward(D, I, M, E, W);
  }
}

double sum_squares_binding(const py::array& x) {
  const char* fn = "sum_squares";
  const Dtype dt = float_dtype(x, fn, "x");
  require_c_contiguous(x, fn, "x");
  const index_t n = x.size();
  if (dt == Dtype::F32) {
    const float* p = static_cast<const float*>(x.data());
    py::gil_scoped_release release;
    return sum_squares(p, n);
  }
  const double* p = static_cast<const double*>(x.data());
  py::gil_scoped_release release;
  return sum_squares(p, n);
}

void scale_inplace_binding(py::array& x, double alpha) {
  const char* fn = "scale_inplace";
  const Dtype dt = float_dtype(x, fn, "x");
  require_writeable_out(x, fn, "x");
  const index_t n = x.size();
  if (dt == Dtype::F32) {
    float* p = static_cast<float*>(x.mutable_data());
    py::gil_scoped_release release;
    scale_inplace(p, n, alpha);
  } else {
    double* p = static_cast<double*>(x.mutable_data());
    py::gil_scoped_release release;
    scale_inplace(p, n, alpha);
  }
}

}  // namespace

void register_rnn(py::module_& m) {
  using py::arg;
  m.def("rnn_forward", &rnn_forward_binding, arg("mode"), arg("x"), arg("w_ih"), arg("w_hh"),
        arg("b_ih").none(true), arg("b_hh").none(true), arg("h0").none(true),
        arg("c0").none(true), arg("lengths").none(true), arg("y"), arg("y_col"), arg("h_n"),
        arg("c_n").none(true), arg("gates"), arg("xh"), arg("c_prev").none(true),
        arg("tanh_c").none(true), arg("batch_first"), arg("reverse"),
        "One layer, one direction of an RNN/LSTM/GRU over a whole sequence (see rnn.h).");
  m.def("rnn_backward", &rnn_backward_binding, arg("mode"), arg("x"), arg("w_ih"), arg("w_hh"),
        arg("lengths").none(true), arg("gates"), arg("xh"), arg("c_prev").none(true),
        arg("tanh_c").none(true), arg("dy").none(true), arg("dy_col"), arg("dh_n").none(true),
        arg("dc_n").none(true), arg("dg"), arg("dgh").none(true), arg("dx").none(true),
        arg("dx_accumulate"), arg("dh0"), arg("dc0").none(true), arg("dw_ih"), arg("dw_hh"),
        arg("db_ih").none(true), arg("db_hh").none(true), arg("batch_first"), arg("reverse"),
        "Backward through time of rnn_forward (see rnn.h).");
  m.def("embedding_forward", &embedding_forward_binding, arg("weight"), arg("indices"),
        arg("out"));
  m.def("embedding_backward", &embedding_backward_binding, arg("dout"), arg("indices"),
        arg("dweight"));
  m.def("sum_squares", &sum_squares_binding, arg("x"));
  m.def("scale_inplace", &scale_inplace_binding, arg("x"), arg("alpha"));
}

}  // namespace bind
}  // namespace neuropil
