// Whole-sequence forward and BPTT for RNN (tanh/ReLU), LSTM and GRU (see rnn.h
// for the equations, the layouts and the cache). One input-projection GEMM,
// then per step one recurrent GEMM and one fused gate kernel; backward forms
// the weight gradients as single GEMMs over all time steps.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "neuropil/cpu.h"
#include "neuropil/gemm.h"
#include "neuropil/parallel.h"
#include "neuropil/rnn.h"
#include "rnn_kernels.h"

namespace neuropil {
namespace {

// ---- grow-only scratch (per calling thread) ------------------------------------
template <typename T>
T* scratch(std::vector<T>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

struct Rows {
  index_t rs_n, rs_t;  // row(n, t) = n * rs_n + t * rs_t
  index_t operator()(index_t n, index_t t) const { return n * rs_n + t * rs_t; }
};

inline Rows rows_of(const SeqDims& d) {
  return d.batch_first ? Rows{d.T, 1} : Rows{1, d.N};
}

// Gate kernels run over (batch row, block of hidden units) items; in parallel
// when a step has enough elements to pay for waking the pool.
constexpr index_t kHBlock = 64;
constexpr index_t kParallelElems = 4096;  // per-step gate work, see step_matmul

template <typename F>
void for_rows_blocks(index_t N, index_t H, index_t elems, F&& fn) {
  const index_t nb = (H + kHBlock - 1) / kHBlock;
  const int threads = (elems >= kParallelElems && N * nb > 1) ? get_num_threads() : 1;
  parallel_for(N * nb, threads, [&](index_t begin, index_t end) {
    for (index_t it = begin; it < end; ++it) {
      const index_t n = it / nb, jb = it % nb;
      const index_t j0 = jb * kHBlock, j1 = std::min(H, j0 + kHBlock);
      fn(n, j0, j1);
    }
  });
}

// x in the caller's layout -> xh[:, 0:I] (time-major rows, row stride ldo),
// and the ones column xh[:, I+H]; parallel over t.
template <typename T>
void copy_inputs(const T* x, const SeqDims& d, const Rows& urow, T* xh, index_t ldo) {
  const index_t N = d.N, Tn = d.T, I = d.I, H = d.H;
  const int threads = N * Tn * I >= 65536 ? get_num_threads() : 1;
  parallel_for(Tn, threads, [&](index_t t0, index_t t1) {
    for (index_t t = t0; t < t1; ++t)
      for (index_t n = 0; n < N; ++n) {
        const T* src = x + urow(n, t) * I;
        T* dst = xh + (t * N + n) * ldo;
        std::copy(src, src + I, dst);
        dst[I + H] = T(1);
      }
  });
}

// a [T, N, I] -> out [N, T, I] (written, or added to); parallel over n.
template <typename T>
void untranspose_rows(const T* a, index_t N, index_t Tn, index_t I, bool accumulate, T* out) {
  const int threads = N * Tn * I >= 65536 ? get_num_threads() : 1;
  parallel_for(N, threads, [&](index_t n0, index_t n1) {
    for (index_t n = n0; n < n1; ++n)
      for (index_t t = 0; t < Tn; ++t) {
        const T* src = a + (t * N + n) * I;
        T* dst = out + (n * Tn + t) * I;
        if (accumulate)
          for (index_t i = 0; i < I; ++i) dst[i] += src[i];
        else
          std::copy(src, src + I, dst);
      }
  });
}



// ---- the per-step recurrent product -------------------------------------------
// op(W) [K, Ncols] for W = w_hh [GH, H]: forward op = W^T (K = H, Ncols = GH),
// backward op = W (K = GH, Ncols = H). W is packed once per call of
// forward/backward with gemm's pack-once API, and every step multiplies the
// packed panels (re-packing W at each step cost about half the arithmetic).
template <typename T>
struct StepOperand {
  GemmPackedB layout;
  const T* packed;
};

template <typename T>
StepOperand<T> make_operand(const T* w, index_t GH, index_t H, bool trans) {
  const index_t K = trans ? H : GH, Ncols = trans ? GH : H;
  StepOperand<T> op{gemm_pack_b_layout(sizeof(T), K, Ncols), nullptr};
  static thread_local std::vector<T> buf_fwd, buf_bwd;
  T* bp = scratch(trans ? buf_fwd : buf_bwd, static_cast<std::size_t>(op.layout.size));
  gemm_pack_b(op.layout, trans ? Trans::Yes : Trans::No, w, H, bp);
  op.packed = bp;
  return op;
}

// c[M, Ncols] (ldc) = (accumulate ? c : 0) + a[M, K] (lda) x op(W)
template <typename T>
void step_matmul(const StepOperand<T>& op, const T* a, index_t lda, index_t M, T* c,
                 index_t ldc, bool accumulate) {
  // A step's product is small and wakes the pool 2T times per sequence; with
  // the bounded OpenMP spin neuropil sets (the workers are still spinning
  // from the previous step) splitting pays from about 1 MFLOP: at T=32 N=32
  // hidden 128 on 2 threads, RNN/LSTM/GRU went from 18.4k/5.1k/6.4k to
  // 20.8k/6.0k/8.9k sequences/s against an 8 MFLOP threshold.
  const double flops = 2.0 * double(M) * double(op.layout.N) * double(op.layout.K);
  const int threads = flops >= 1.0e6 ? get_num_threads() : 1;
  gemm_prepacked_b(op.layout, Trans::No, M, T(1), a, lda, op.packed, accumulate ? T(1) : T(0),
                   c, ldc, threads);
}


// Gate kernels: for float the build of the active ISA (AVX-512, AVX2),
// else portable.
template <typename T>
auto pick_gate_forward() {
  using Fn = void (*)(const rnn_detail::GateStep<T>&, index_t, index_t, index_t);
  if constexpr (std::is_same<T, float>::value) {
#ifdef NEUROPIL_HAVE_AVX512
    if (active_isa() >= Isa::Avx512) return static_cast<Fn>(rnn_detail::gate_forward_avx512);
#endif
#ifdef NEUROPIL_HAVE_AVX2
    if (active_isa() >= Isa::Avx2) return static_cast<Fn>(rnn_detail::gate_forward_avx2);
#endif
  }
  return static_cast<Fn>(rnn_detail::gate_forward_generic);
}

template <typename T>
auto pick_gate_backward() {
  using Fn = void (*)(const rnn_detail::GateStep<T>&, index_t, index_t, index_t);
  if constexpr (std::is_same<T, float>::value) {
#ifdef NEUROPIL_HAVE_AVX512
    if (active_isa() >= Isa::Avx512) return static_cast<Fn>(rnn_detail::gate_backward_avx512);
#endif
#ifdef NEUROPIL_HAVE_AVX2
    if (active_isa() >= Isa::Avx2) return static_cast<Fn>(rnn_detail::gate_backward_avx2);
#endif
  }
  return static_cast<Fn>(rnn_detail::gate_backward_generic);
}

// ---- forward ---------------------------------------------------------------------
template <typename T>
void forward_impl(CellKind kind, const SeqDims& d, const T* x, const RecurrentWeights<T>& w,
                  const T* h0, const T* c0, const std::int64_t* lengths, T* y, index_t ldy,
                  T* h_n, T* c_n, const RecurrentCache<T>& cache) {
  const index_t N = d.N, Tn = d.T, I = d.I, H = d.H;
  const index_t G = cell_gates(kind), GH = G * H, CH = cell_cache_width(kind) * H;
  const index_t rows = N * Tn, XW = I + H + 1;
  const Rows urow = rows_of(d);  // x, y: the caller's layout
  const Rows row{1, N};          // cache: time-major, so a step's rows are contiguous
  T* xh = cache.xh;
  const bool lstm = kind == CellKind::Lstm, gru = kind == CellKind::Gru;

  if (N == 0) return;
  if (Tn == 0) {  // nothing happens: the final state is the initial one
    for (index_t i = 0; i < N * H; ++i) h_n[i] = h0 ? h0[i] : T(0);
    if (lstm)
      for (index_t i = 0; i < N * H; ++i) c_n[i] = c0 ? c0[i] : T(0);
    return;
  }

  // Biases: RNN/LSTM add b_ih + b_hh once per element; GRU keeps them apart.
  static thread_local std::vector<T> bias_buf, hw_buf;
  T* bias = scratch(bias_buf, 2 * GH);
  T* bi = bias;
  T* bh = bias + GH;
  for (index_t k = 0; k < GH; ++k) {
    bi[k] = w.b_ih ? w.b_ih[k] : T(0);
    bh[k] = w.b_hh ? w.b_hh[k] : T(0);
    if (!gru) bi[k] += bh[k];
  }
  T* hw = gru ? scratch(hw_buf, static_cast<std::size_t>(N * GH)) : nullptr;

  // Input projection of every step at once: gates[:, 0:GH] = X W_ih^T, X in
  // time-major order in the first I columns of xh.
  copy_inputs(x, d, urow, xh, XW);
  gemm(Trans::No, Trans::Yes, rows, GH, I, T(1), xh, XW, w.w_ih, I, T(0), cache.gates, CH);

  const StepOperand<T> w_step = make_operand(w.w_hh, GH, H, true);
  rnn_detail::GateStep<T> st{};
  st.kind = kind;
  st.H = H;
  st.G = G;
  st.GH = GH;
  st.CH = CH;
  st.lengths = lengths;
  st.bi = bi;
  st.bh = bh;
  st.hw = hw;
  st.y_stride = urow.rs_n * ldy;
  st.h_stride = XW;
  const auto gate = pick_gate_forward<T>();
  const index_t t_first = d.reverse ? Tn - 1 : 0;
  for (index_t n = 0; n < N; ++n) {
    T* hp = xh + row(n, t_first) * XW + I;
    for (index_t j = 0; j < H; ++j) hp[j] = h0 ? h0[n * H + j] : T(0);
    if (lstm) {
      T* cp = cache.c_prev + row(n, t_first) * H;
      for (index_t j = 0; j < H; ++j) cp[j] = c0 ? c0[n * H + j] : T(0);
    }
  }

  for (index_t s = 0; s < Tn; ++s) {
    const index_t t = d.reverse ? Tn - 1 - s : s;
    const bool last = s == Tn - 1;
    const index_t tn = d.reverse ? t - 1 : t + 1;
    const T* hp_t = xh + row(0, t) * XW + I;
    T* g_t = cache.gates + row(0, t) * CH;
    if (gru)
      step_matmul(w_step, hp_t, XW, N, hw, GH, false);
    else
      step_matmul(w_step, hp_t, XW, N, g_t, CH, true);

    st.t = t;
    st.gates = g_t;
    st.h_prev = hp_t;
    st.c_prev = lstm ? cache.c_prev + row(0, t) * H : nullptr;
    st.tanh_c = lstm ? cache.tanh_c + row(0, t) * H : nullptr;
    st.y = y + urow(0, t) * ldy;
    st.h_next = last ? h_n : xh + row(0, tn) * XW + I;
    st.h_next_stride = last ? H : XW;
    st.c_next = lstm ? (last ? c_n : cache.c_prev + row(0, tn) * H) : nullptr;
    for_rows_blocks(N, H, N * GH, [&](index_t n, index_t j0, index_t j1) { gate(st, n, j0, j1); });
  }
}

// Column sums: db[k] += sum over rows of a[r, k], rows in order (deterministic).
template <typename T>
void add_column_sums(const T* a, index_t rows, index_t cols, T* db) {
  const index_t cb = 64;
  const index_t nblk = (cols + cb - 1) / cb;
  const int threads = rows * cols >= 262144 ? get_num_threads() : 1;
  parallel_for(nblk, threads, [&](index_t begin, index_t end) {
    T acc[64];
    for (index_t b = begin; b < end; ++b) {
      const index_t k0 = b * cb, k1 = std::min(cols, k0 + cb), w = k1 - k0;
      for (index_t k = 0; k < w; ++k) acc[k] = T(0);
      for (index_t r = 0; r < rows; ++r) {
        const T* ar = a + r * cols + k0;
        for (index_t k = 0; k < w; ++k) acc[k] += ar[k];
      }
      for (index_t k = 0; k < w; ++k) db[k0 + k] += acc[k];
    }
  });
}

// ---- backward --------------------------------------------------------------------
template <typename T>
void backward_impl(CellKind kind, const SeqDims& d, const T* x, const RecurrentWeights<T>& w,
                   const std::int64_t* lengths, const RecurrentCache<T>& cache, const T* dy,
                   index_t ldy, const T* dh_n, const T* dc_n, T* dg, T* dgh, T* dx,
                   bool dx_accumulate, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih,
                   T* db_hh) {
  const index_t N = d.N, Tn = d.T, I = d.I, H = d.H;
  const index_t G = cell_gates(kind), GH = G * H, CH = cell_cache_width(kind) * H;
  const index_t rows = N * Tn, XW = I + H + 1;
  const T* xh = cache.xh;  // holds x (time-major) as forward copied it
  (void)x;
  const Rows urow = rows_of(d);  // x, dx, dy: the caller's layout
  const Rows row{1, N};          // cache and dg: time-major
  const bool lstm = kind == CellKind::Lstm, gru = kind == CellKind::Gru;
  if (!gru) dgh = dg;

  // The carries dh (and dc) live in the dh0 (dc0) outputs.
  for (index_t i = 0; i < N * H; ++i) dh0[i] = dh_n ? dh_n[i] : T(0);
  if (lstm)
    for (index_t i = 0; i < N * H; ++i) dc0[i] = dc_n ? dc_n[i] : T(0);
  if (N == 0 || Tn == 0) {
    if (dx && !dx_accumulate)
      for (index_t i = 0; i < rows * I; ++i) dx[i] = T(0);
    return;
  }

  const StepOperand<T> w_step = make_operand(w.w_hh, GH, H, false);
  rnn_detail::GateStep<T> st{};
  st.kind = kind;
  st.H = H;
  st.G = G;
  st.GH = GH;
  st.CH = CH;
  st.lengths = lengths;
  st.dy_stride = urow.rs_n * ldy;
  st.h_stride = XW;
  st.dh = dh0;
  st.dc = lstm ? dc0 : nullptr;
  const auto gate = pick_gate_backward<T>();
  for (index_t s = Tn - 1; s >= 0; --s) {
    const index_t t = d.reverse ? Tn - 1 - s : s;
    st.t = t;
    st.gates = cache.gates + row(0, t) * CH;
    st.h_prev = xh + row(0, t) * XW + I;
    st.c_prev = lstm ? cache.c_prev + row(0, t) * H : nullptr;
    st.tanh_c = lstm ? cache.tanh_c + row(0, t) * H : nullptr;
    st.dy = dy ? dy + urow(0, t) * ldy : nullptr;
    st.dg = dg + row(0, t) * GH;
    st.dgh = dgh + row(0, t) * GH;
    for_rows_blocks(N, H, N * GH, [&](index_t n, index_t j0, index_t j1) { gate(st, n, j0, j1); });
    // dh_{prev} += dGh_t W_hh
    step_matmul(w_step, dgh + row(0, t) * GH, GH, N, dh0, H, true);
  }

  // Weight gradients over all steps at once: [dW_ih | dW_hh] = dG^T [X | Hprev]
  // (GRU: dW_ih from dGx, dW_hh from dGh); bias gradients as column sums of
  // dG. The cache's ones column is left out of the GEMM: with it, N = I + H + 1
  // (193 at I = 64, H = 128) paid a 13th, nearly empty 16-wide panel.
  static thread_local std::vector<T> dw_buf;
  if (!gru) {
    const index_t XH = I + H;
    T* c = scratch(dw_buf, static_cast<std::size_t>(GH * XH + GH));
    T* db = c + GH * XH;
    gemm(Trans::Yes, Trans::No, GH, XH, rows, T(1), dg, GH, xh, XW, T(0), c, XH);
    std::fill(db, db + GH, T(0));
    if (db_ih || db_hh) add_column_sums(dg, rows, GH, db);
    for (index_t k = 0; k < GH; ++k) {
      const T* ck = c + k * XH;
      for (index_t i = 0; i < I; ++i) dw_ih[k * I + i] += ck[i];
      for (index_t j = 0; j < H; ++j) dw_hh[k * H + j] += ck[I + j];
      if (db_ih) db_ih[k] += db[k];
      if (db_hh) db_hh[k] += db[k];
    }
  } else {
    gemm(Trans::Yes, Trans::No, GH, I, rows, T(1), dg, GH, xh, XW, T(1), dw_ih, I);
    if (db_ih) add_column_sums(dg, rows, GH, db_ih);
    gemm(Trans::Yes, Trans::No, GH, H, rows, T(1), dgh, GH, xh + I, XW, T(1), dw_hh, H);
    if (db_hh) add_column_sums(dgh, rows, GH, db_hh);
  }
  if (dx && !d.batch_first) {
    gemm(Trans::No, Trans::No, rows, I, GH, T(1), dg, GH, w.w_ih, I,
         dx_accumulate ? T(1) : T(0), dx, I);
  } else if (dx) {  // time-major product, then back to the caller's batch-first rows
    static thread_local std::vector<T> dx_buf;
    T* dxt = scratch(dx_buf, static_cast<std::size_t>(rows * I));
    gemm(Trans::No, Trans::No, rows, I, GH, T(1), dg, GH, w.w_ih, I, T(0), dxt, I);
    untranspose_rows(dxt, N, Tn, I, dx_accumulate, dx);
  }
}

}  // namespace

int cell_gates(CellKind kind) noexcept {
  switch (kind) {
    case CellKind::Lstm: return 4;
    case CellKind::Gru: return 3;
    default: return 1;
  }
}

int cell_cache_width(CellKind kind) noexcept {
  return (kind == CellKind::Lstm || kind == CellKind::Gru) ? 4 : 1;
}

void recurrent_forward(CellKind kind, const SeqDims& d, const float* x,
                       const RecurrentWeights<float>& w, const float* h0, const float* c0,
                       const std::int64_t* lengths, float* y, index_t ldy, float* h_n,
                       float* c_n, const RecurrentCache<float>& cache) noexcept {
  forward_impl(kind, d, x, w, h0, c0, lengths, y, ldy, h_n, c_n, cache);
}
void recurrent_forward(CellKind kind, const SeqDims& d, const double* x,
                       const RecurrentWeights<double>& w, const double* h0, const double* c0,
                       const std::int64_t* lengths, double* y, index_t ldy, double* h_n,
                       double* c_n, const RecurrentCache<double>& cache) noexcept {
  forward_impl(kind, d, x, w, h0, c0, lengths, y, ldy, h_n, c_n, cache);
}

void recurrent_backward(CellKind kind, const SeqDims& d, const float* x,
                        const RecurrentWeights<float>& w, const std::int64_t* lengths,
                        const RecurrentCache<float>& cache, const float* dy, index_t ldy,
                        const float* dh_n, const float* dc_n, float* dg, float* dgh,
                        float* dx, bool dx_accumulate, float* dh0, float* dc0, float* dw_ih,
                        float* dw_hh, float* db_ih, float* db_hh) noexcept {
  backward_impl(kind, d, x, w, lengths, cache, dy, ldy, dh_n, dc_n, dg, dgh, dx, dx_accumulate,
                dh0, dc0, dw_ih, dw_hh, db_ih, db_hh);
}
void recurrent_backward(CellKind kind, const SeqDims& d, const double* x,
                        const RecurrentWeights<double>& w, const std::int64_t* lengths,
                        const RecurrentCache<double>& cache, const double* dy, index_t ldy,
                        const double* dh_n, const double* dc_n, double* dg, double* dgh,
                        double* dx, bool dx_accumulate, double* dh0, double* dc0,
                        double* dw_ih, double* dw_hh, double* db_ih, double* db_hh) noexcept {
  backward_impl(kind, d, x, w, lengths, cache, dy, ldy, dh_n, dc_n, dg, dgh, dx, dx_accumulate,
                dh0, dc0, dw_ih, dw_hh, db_ih, db_hh);
}

}  // namespace neuropil
