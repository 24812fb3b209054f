// Pieces shared by the GEMM driver's translation units (internal to
// cpp/src/gemm): gemm.cpp (the packed path, dispatch, public entry points)
// and gemm_skinny.cpp (the skinny and small paths, the pack-once API). Both
// are portable translation units, so this header may hold inline code; the
// ISA-specific kernels see only kernels.h.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "kernels.h"
#include "neuropil/common.h"
#include "neuropil/cpu.h"
#include "neuropil/gemm.h"
#include "neuropil/parallel.h"

namespace neuropil {
namespace gemm_driver {

using gemm_detail::Blocking;
using gemm_detail::KernelTable;

// The kernel table of an ISA family, tuned to the detected caches (gemm.cpp).
const KernelTable& table_for(Isa isa);

// A grow-only, 64-byte aligned scratch buffer, one per calling thread, reused
// across calls so a steady-state training step allocates nothing here.
struct Scratch {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  ~Scratch() { std::free(ptr); }
  void* get(std::size_t need) {
    if (need > bytes) {
      std::free(ptr);
      need = (need + 4095) & ~std::size_t(4095);
      ptr = std::aligned_alloc(64, need);
      if (!ptr) {
        bytes = 0;
        throw std::bad_alloc();
      }
      bytes = need;
    }
    return ptr;
  }
};

template <typename T>
struct Traits;
template <>
struct Traits<float> {
  static gemm_detail::ukr_f32 ukr(const KernelTable& t) { return t.sgemm; }
  static const Blocking& blk(const KernelTable& t) { return t.s; }
  static gemm_detail::pack_a_fn<float> pack_a(const KernelTable& t) { return t.spack_a; }
  static gemm_detail::pack_b_fn<float> pack_b(const KernelTable& t) { return t.spack_b; }
  static gemm_detail::ukr_ga_f32 ukr_ga(const KernelTable& t) { return t.sgemm_ga; }
  static auto store_t(const KernelTable& t) { return t.sstore_t; }
  static gemm_detail::ukr_ga_f32 ga_rows(const KernelTable& t, index_t rows) {
    return t.sgemm_ga_rows[rows - 1];
  }
  static gemm_detail::ukr_gan_f32 ga_cols(const KernelTable& t, index_t rows) {
    return t.sgemm_ga_cols[rows - 1];
  }
  static gemm_detail::ukr_small_f32 small(const KernelTable& t, index_t rows) {
    return t.sgemm_small[rows - 1];
  }
};
template <>
struct Traits<double> {
  static gemm_detail::ukr_f64 ukr(const KernelTable& t) { return t.dgemm; }
  static const Blocking& blk(const KernelTable& t) { return t.d; }
  static gemm_detail::pack_a_fn<double> pack_a(const KernelTable& t) { return t.dpack_a; }
  static gemm_detail::pack_b_fn<double> pack_b(const KernelTable& t) { return t.dpack_b; }
  static gemm_detail::ukr_ga_f64 ukr_ga(const KernelTable& t) { return t.dgemm_ga; }
  static void (*store_t(const KernelTable&))(const double*, double*, index_t, double) {
    return nullptr;
  }
  static gemm_detail::ukr_ga_f64 ga_rows(const KernelTable& t, index_t rows) {
    return t.dgemm_ga_rows[rows - 1];
  }
  static gemm_detail::ukr_gan_f64 ga_cols(const KernelTable& t, index_t rows) {
    return t.dgemm_ga_cols[rows - 1];
  }
  static gemm_detail::ukr_small_f64 small(const KernelTable& t, index_t rows) {
    return t.dgemm_small[rows - 1];
  }
};

// C = beta * C over an M x N block (beta == 0 writes zeros, never reads C).
template <typename T>
void scale_c(index_t M, index_t N, T beta, T* C, index_t ldc) {
  for (index_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (beta == T(0)) {
      std::fill(c, c + N, T(0));
    } else if (beta != T(1)) {
      for (index_t j = 0; j < N; ++j) c[j] *= beta;
    }
  }
}

// Split a grid of mp x np tiles among t threads as tm x tn rectangles,
// minimising the largest share. Ties split N (each thread then packs and
// reads only its own B panels) unless prefer_m (the skinny path, whose large
// operand A is read in place: an M split reads each row of it once).
inline void split_grid(index_t mp, index_t np, int t, index_t* tm_out, index_t* tn_out,
                bool prefer_m = false) {
  index_t best_tm = 1, best_tn = 1, best_cost = -1;
  for (index_t tm = 1; tm <= t; ++tm) {
    if (t % tm) continue;
    index_t tn = t / tm;
    if (tm > mp || tn > np) continue;
    index_t cost = ((mp + tm - 1) / tm) * ((np + tn - 1) / tn);
    const bool preferred = prefer_m ? tm > best_tm : tn > best_tn;
    if (best_cost < 0 || cost < best_cost || (cost == best_cost && preferred)) {
      best_cost = cost;
      best_tm = tm;
      best_tn = tn;
    }
  }
  *tm_out = best_tm;
  *tn_out = best_tn;
}

// Writes the valid mr_valid x nr_valid part of a computed tile (row stride
// ld_tile) to the product's element (i0 + r, j0 + s), which lives at
// C[(i0 + r) * ldc + j0 + s], or at C[(j0 + s) * ldc + i0 + r] with c_trans.
template <typename T>
void store_tile(const T* tile, index_t ld_tile, index_t mr_valid, index_t nr_valid, T* C,
                index_t ldc, index_t i0, index_t j0, bool c_trans, T beta) {
  if (c_trans) {  // tile column j is a contiguous run of C's row j0 + j
    for (index_t j = 0; j < nr_valid; ++j) {
      T* cj = C + (j0 + j) * ldc + i0;
      const T* e = tile + j;
      if (beta == T(0)) {
        for (index_t r = 0; r < mr_valid; ++r) cj[r] = e[r * ld_tile];
      } else if (beta == T(1)) {
        for (index_t r = 0; r < mr_valid; ++r) cj[r] += e[r * ld_tile];
      } else {
        for (index_t r = 0; r < mr_valid; ++r) cj[r] = e[r * ld_tile] + beta * cj[r];
      }
    }
    return;
  }
  for (index_t r = 0; r < mr_valid; ++r) {
    const T* e = tile + r * ld_tile;
    T* cr = C + (i0 + r) * ldc + j0;
    if (beta == T(0)) {
      for (index_t j = 0; j < nr_valid; ++j) cr[j] = e[j];
    } else {
      for (index_t j = 0; j < nr_valid; ++j) cr[j] = e[j] + beta * cr[j];
    }
  }
}

// K split into equal blocks of at most kc (multiples of 8): 784 runs as
// 4 x 196, not 3 x 256 + 16, whose short tail would pay a full pass over C.
inline index_t balanced_kc(index_t K, index_t kc) {
  const index_t blocks = (K + kc - 1) / kc;
  const index_t even = (K + blocks - 1) / blocks;
  return std::min(kc, (even + 7) / 8 * 8);
}

// Largest packed op(B) the skinny path packs whole before computing.
constexpr std::size_t kPackAllBytes = std::size_t(4) << 20;

// Rows of k packed per pass over the B panels (see gemm_packed).
constexpr index_t kPackRows = 16;

// Products smaller than this run on one thread: waking the pool costs more.
constexpr double kParallelFlops = 2.0 * 80 * 80 * 80;
// The skinny path (one side at most 128) needs more: its short side leaves
// each thread a thin slice and the packed panel of the short operand is
// shared through a barrier. Measured (AVX-512, 2 threads against 1): a
// 10-class head 128x512.512x10 (1.3 MFLOP) ran at 0.69x, 256x512.512x10
// (2.6 MFLOP) 0.90x, 128x512.512x32 (4.2 MFLOP) 0.80x; 128x2048.2048x10 and
// 512x512.512x10 (5.2 MFLOP) 1.06x and 1.26x.
constexpr double kSkinnyParallelFlops = 5.0e6;

// Row panels of a block of M rows. A tail of 1 or 2 rows runs only 2-4 FMA
// chains (latency-bound); with row-count kernels the last full panel and the
// tail run as 4 + (2 + tail) rows instead (merges_tail). panel_rows gives
// the first row and the row count of panel ir of mp.
template <typename T>
bool merges_tail(const KernelTable& table, index_t M, int mr) {
  const index_t tail = M % mr;
  return mr == 6 && (tail == 1 || tail == 2) && M > mr && Traits<T>::ga_rows(table, 4) != nullptr;
}

struct PanelRows {
  index_t i, rows;
};

inline PanelRows panel_rows(index_t ir, index_t mp, int mr, index_t M, bool merge_tail) {
  if (merge_tail && ir >= mp - 2) {
    const index_t i = (mp - 2) * mr + (ir == mp - 2 ? 0 : 4);
    return {i, ir == mp - 2 ? 4 : M - i};
  }
  return {ir * mr, std::min<index_t>(mr, M - ir * mr)};
}

// Item it of the (column panel, row block) grid that the few-row kernels
// run, threads taking contiguous ranges of items: row blocks first when
// there are enough of them to share evenly (each thread then reads only its
// rows of A, the large operand read in place, as split_grid's M preference
// does for the skinny path), else column panels first (an RNN step's 3 row
// blocks would split 1 + 2).
struct SmallItem {
  index_t jr, rb;
};
inline SmallItem small_item(index_t it, index_t nb, index_t np, int threads) {
  if (nb >= 2 * index_t(threads)) return {it % np, it / np};
  return {it / nb, it % nb};
}

// Column panels of a block of nc columns: panel jr covers columns
// [first(jr), first(jr) + cols(jr)); with off > 0 the first panel is only
// nr - off wide, and the others start off columns earlier than jr * nr.
struct ColumnPanels {
  index_t nc, nr, off;
  index_t count() const { return (nc + off + nr - 1) / nr; }
  index_t first(index_t jr) const { return std::max<index_t>(0, jr * nr - off); }
  index_t cols(index_t jr) const { return std::min(nc, (jr + 1) * nr - off) - first(jr); }
};

// Small products with op(B) rows contiguous run in place (see
// KernelTable::small_rows and gemm_small).
inline bool runs_small(const KernelTable& table, index_t rows, index_t K, index_t cols) {
  return table.small_rows > 0 &&
         (rows <= table.small_rows || (rows <= table.small_max && K <= table.small_k &&
                                       double(rows) * double(cols) <= table.small_mn));
}

// The skinny and small paths (gemm_skinny.cpp), instantiated for float and
// double. With c_trans the product computed is C^T: element (i, j) is stored
// at C[j * ldc + i].
template <typename T>
void gemm_skinny(const KernelTable& table, Trans ta, Trans tb, index_t M, index_t N, index_t K,
                 T alpha, const T* A, index_t lda, const T* B, index_t ldb, T beta, T* C,
                 index_t ldc, bool c_trans);
template <typename T>
void gemm_small(const KernelTable& table, Trans ta, index_t M, index_t N, index_t K, T alpha,
                const T* A, index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc,
                bool c_trans);

}  // namespace gemm_driver
}  // namespace neuropil
