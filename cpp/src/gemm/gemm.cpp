// GEMM driver: GotoBLAS/BLIS loop nest over packed panels.
//
//   for jc in N by nc:                      B block [kc, nc] lives in L3
//     for pc in K by kc:                    (never split across threads)
//       for mb in M by mb_rows:             A block [mb_rows, kc] packed once
//         pack op(B)[pc:, jc:] into nr-wide panels, op(A)[mb:, pc:] into mr-tall panels
//         threads split the tile grid (M panels x N panels) into tm x tn parts;
//         each part: for ic by mc: for jr: for ir: micro-kernel
// beta is applied on the first pc block only (later blocks accumulate with 1).
// Edge tiles run the same micro-kernel into a local buffer (zero-padded panels),
// so no kernel ever reads or writes outside the matrices.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "kernels.h"
#include "neuropil/cpu.h"
#include "neuropil/gemm.h"
#include "neuropil/parallel.h"

namespace neuropil {
namespace {

using gemm_detail::Blocking;
using gemm_detail::KernelTable;

// Cache blocking from the detected cache sizes (BLIS's rules of thumb), within
// clamps that keep odd reports (a hypervisor's whole-socket L3, say) harmless:
//   kc: a B micro-panel [kc][nr] fills half of L1;
//   mc: an A block [mc][kc] fills half of L2;
//   nc: a B block [kc][nc] fills a quarter of L3.
// Unknown sizes keep the table's defaults. Depends on the CPU only, never on
// the thread count, so results stay bitwise reproducible on one machine.
Blocking tuned(Blocking b, std::size_t elem) {
  const CpuInfo& cpu = cpu_info();
  auto round_down = [](index_t x, index_t m) { return std::max<index_t>(m, x / m * m); };
  if (cpu.l1d_bytes > 0)
    b.kc = std::clamp<index_t>(round_down(cpu.l1d_bytes / 2 / (b.nr * elem), 16), 128, 512);
  if (cpu.l2_bytes > 0)
    b.mc = std::clamp<index_t>(round_down(cpu.l2_bytes / 2 / (b.kc * elem), b.mr), 8 * b.mr,
                               round_down(480, b.mr));
  if (cpu.l3_bytes > 0) {
    const index_t l3 = std::min<index_t>(cpu.l3_bytes, index_t(32) << 20);
    b.nc = std::clamp<index_t>(round_down(l3 / 4 / (b.kc * elem), b.nr), 32 * b.nr, 8192);
  }
  return b;
}

KernelTable tuned(KernelTable t) {
  t.s = tuned(t.s, sizeof(float));
  t.d = tuned(t.d, sizeof(double));
  return t;
}

const KernelTable& table_for(Isa isa) {
  static const KernelTable generic = tuned(gemm_detail::generic_kernels());
#ifdef NEUROPIL_HAVE_AVX512
  if (isa == Isa::Avx512) {
    static const KernelTable avx512 = tuned(gemm_detail::avx512_kernels());
    return avx512;
  }
#endif
#ifdef NEUROPIL_HAVE_AVX2
  if (isa >= Isa::Avx2) {
    static const KernelTable avx2 = tuned(gemm_detail::avx2_kernels());
    return avx2;
  }
#else
  (void)isa;
#endif
  return generic;
}

}  // namespace

void gemm_blocking(int dtype_bytes, int* mr, int* nr, index_t* mc, index_t* kc, index_t* nc) {
  const KernelTable& t = table_for(active_isa());
  const Blocking& b = dtype_bytes == 4 ? t.s : t.d;
  *mr = b.mr;
  *nr = b.nr;
  *mc = b.mc;
  *kc = b.kc;
  *nc = b.nc;
}

namespace {

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
void split_grid(index_t mp, index_t np, int t, index_t* tm_out, index_t* tn_out,
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
index_t balanced_kc(index_t K, index_t kc) {
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

// The packed loop nest. With c_trans, the tile grid computes C^T: element
// (i, j) of the product is stored at C[j * ldc + i] (used to solve narrow-N
// problems as C^T = op(B)^T op(A)^T, so the short side meets the short tile).
template <typename T>
void gemm_packed(const KernelTable& table, Trans ta, Trans tb, index_t M, index_t N, index_t K,
                 T alpha, const T* A, index_t lda, const T* B, index_t ldb, T beta, T* C,
                 index_t ldc, bool c_trans) {
  const auto ukr = Traits<T>::ukr(table);
  const auto pack_a = Traits<T>::pack_a(table);
  const auto pack_b = Traits<T>::pack_b(table);
  const Blocking blk = Traits<T>::blk(table);
  const int mr = blk.mr, nr = blk.nr;

  const double flops = 2.0 * double(M) * double(N) * double(K);
  const int threads = flops < kParallelFlops ? 1 : get_num_threads();

  // Rows of A packed at once: at most one mc block, packed just before it is
  // used, so it is still in L2 then (eight blocks, 3 MB at kc = 192, were
  // partly evicted by the time the last was used: 2048^2 ran 4% slower on a
  // 2 MB L2). M is cut into equal blocks: 512 rows as 2 x 256, not 480 + 32,
  // whose short block reloads every B panel for 5 row tiles.
  const index_t mblocks = (M + blk.mc - 1) / blk.mc;
  const index_t mb_rows = ((M + mblocks - 1) / mblocks + mr - 1) / mr * mr;
  const index_t kc_max = balanced_kc(K, blk.kc);
  const index_t nc_max = std::min<index_t>(blk.nc, ((N + nr - 1) / nr) * nr);

  // a(i, k) of op(A) = A[i * rs_a + k * cs_a] (tail rows read in place)
  const index_t rs_a = ta == Trans::Yes ? 1 : lda, cs_a = ta == Trans::Yes ? lda : 1;

  static thread_local Scratch scratch_a, scratch_b;
  T* Ap = static_cast<T*>(scratch_a.get(sizeof(T) * mb_rows * kc_max));
  T* Bp = static_cast<T*>(scratch_b.get(sizeof(T) * (nc_max + nr) * kc_max));

  // With masked kernels for partial panels, the first column panel is cut
  // short when that makes the others start on a 64-byte line of C (C's rows
  // then all share its alignment). A NumPy array of 4 MiB or more starts 16
  // bytes past a page, and its tiles' loads and stores of C, each split over
  // two lines, made 2048^2 25% slower and 1024^2 8% (C from memory); a C
  // within twice the L2 loses more to the extra partial panel (784x512 -5%).
  // Every column rounds as in a full panel (no split_k below), so the bits
  // do not depend on C's address.
  const bool has_cols = Traits<T>::ga_cols(table, 1) != nullptr;
  const double l2 = cpu_info().l2_bytes > 0 ? double(cpu_info().l2_bytes) : double(2 << 20);
  const bool align_c = !c_trans && has_cols && (ldc * sizeof(T)) % 64 == 0 &&
                       double(M) * double(N) * sizeof(T) >= 2 * l2;

  // One parallel region for the whole product (one wake of the pool); the
  // phases inside (pack, compute) are separated by barriers.
  parallel_region(threads, [&](int tid, int nt, const Barrier& barrier) {
    alignas(64) T edge[gemm_detail::kMaxMR * gemm_detail::kMaxNR];
    for (index_t jc = 0; jc < N; jc += blk.nc) {
      const index_t nc = std::min(blk.nc, N - jc);
      const auto addr = reinterpret_cast<std::uintptr_t>(C + jc);
      const index_t lead = align_c ? index_t((64 - addr % 64) % 64) / index_t(sizeof(T)) : 0;
      const ColumnPanels cols_of{nc, nr, lead > 0 ? nr - lead : 0};
      const index_t np = cols_of.count();
      for (index_t pc = 0; pc < K; pc += kc_max) {
        const index_t kc = std::min(kc_max, K - pc);
        const T beta_eff = pc == 0 ? beta : T(1);
        bool b_packed = false;
        for (index_t ib = 0; ib < M; ib += mb_rows) {
          const index_t mbr = std::min(mb_rows, M - ib);
          const index_t mp = (mbr + mr - 1) / mr;
          // Each thread computes one rectangle of the tile grid, and packs
          // the B panels and A panels of its rectangle (shared with the
          // threads of its column or row, so split among them): the panels a
          // thread computes with are mostly in its own core's cache.
          index_t tm, tn;
          split_grid(mp, np, nt, &tm, &tn);
          const index_t pm = tid / tn, pn = tid % tn;
          const index_t m0 = mp * pm / tm, m1 = mp * (pm + 1) / tm;
          const index_t n0 = np * pn / tn, n1 = np * (pn + 1) / tn;
          if (tid < tm * tn) {
            // B panels, a few rows of k at a time across all of them: op(B)
            // rows (tb == No) are then read along their length, not one
            // cache line per row (a 4 KiB stride the prefetcher drops).
            const index_t jb0 = b_packed ? 0 : n0 + (n1 - n0) * pm / tm;
            const index_t jb1 = b_packed ? 0 : n0 + (n1 - n0) * (pm + 1) / tm;
            for (index_t k0 = 0; k0 < kc && jb0 < jb1; k0 += kPackRows) {
              const index_t kr = std::min<index_t>(kPackRows, kc - k0);
              for (index_t jr = jb0; jr < jb1; ++jr)
                pack_b(tb == Trans::Yes, B, ldb, jc + cols_of.first(jr), cols_of.cols(jr),
                       pc + k0, kr, Bp + jr * nr * kc + k0 * nr);
            }
            // A panels likewise when op(A) = A^T: each panel takes mr floats
            // of every row of A, and the next panel the following mr of the
            // same rows, still in L1 after kPackRows rows (after all kc rows
            // they were not: a 6-float run per 2 KiB row of an RNN's dG^T).
            const index_t ia0 = m0 + (m1 - m0) * pn / tn, ia1 = m0 + (m1 - m0) * (pn + 1) / tn;
            const index_t ka = ta == Trans::Yes ? kPackRows : kc;
            for (index_t k0 = 0; k0 < kc; k0 += ka)
              for (index_t ir = ia0; ir < ia1; ++ir)
                pack_a(ta == Trans::Yes, A, lda, ib + ir * mr, std::min<index_t>(mr, mbr - ir * mr),
                       pc + k0, std::min(ka, kc - k0), Ap + ir * mr * kc + k0 * mr);
          }
          b_packed = true;
          barrier();

          // A partial last panel would run the full mr-row kernel on zero
          // padding (128 rows = 21 panels + 2 rows costs 22 panels). With
          // row-count kernels a tail of 3-5 rows runs alone, and a tail of 1
          // or 2 rows joins the last full panel as 4 + (2 + tail) rows, the
          // second part read from A in place (a 1- or 2-row kernel runs too
          // few FMA chains to hide their latency).
          const index_t tail = mbr % mr;
          const bool merge_tail = merges_tail<T>(table, mbr, mr);
          const bool rows_tail = tail >= 3 && Traits<T>::ga_rows(table, tail) != nullptr;
          const index_t tail_from = merge_tail ? mp - 2 : rows_tail ? mp - 1 : mp;

          if (tid < tm * tn) {
            const index_t mc_panels = blk.mc / mr;
            for (index_t ic = m0; ic < m1; ic += mc_panels) {
              const index_t ic_end = std::min(m1, ic + mc_panels);
              for (index_t jr = n0; jr < n1; ++jr) {
                const T* bpanel = Bp + jr * nr * kc;
                const index_t j = cols_of.first(jr), nr_valid = cols_of.cols(jr);
                for (index_t ir = ic; ir < ic_end; ++ir) {
                  const T* apanel = Ap + ir * mr * kc;
                  const auto [i, mr_valid] = panel_rows(ir, mp, mr, mbr, merge_tail);
                  // Row-count kernels read the packed panel (a(i, k) at
                  // [k * mr + i]) or, for the merged tail's second part, A
                  // in place.
                  const bool in_place = merge_tail && ir == mp - 1;
                  const T* a = in_place ? A + (ib + i) * rs_a + pc * cs_a : apanel;
                  const index_t rs = in_place ? rs_a : 1, cs = in_place ? cs_a : mr;
                  if (nr_valid < nr && has_cols) {  // partial column panel: masked kernel
                    const auto cols = Traits<T>::ga_cols(table, mr_valid);
                    if (!c_trans) {
                      cols(kc, a, rs, cs, bpanel, C + (ib + i) * ldc + jc + j, ldc, alpha,
                           beta_eff, int(nr_valid), false);
                      continue;
                    }
                    cols(kc, a, rs, cs, bpanel, edge, nr, alpha, T(0), int(nr_valid), false);
                  } else if (ir >= tail_from) {
                    const auto rows = Traits<T>::ga_rows(table, mr_valid);
                    if (!c_trans && nr_valid == nr) {
                      rows(kc, a, rs, cs, bpanel, C + (ib + i) * ldc + jc + j, ldc, alpha,
                           beta_eff);
                      continue;
                    }
                    rows(kc, a, rs, cs, bpanel, edge, nr, alpha, T(0));
                  } else {
                    if (!c_trans && mr_valid == mr && nr_valid == nr) {
                      ukr(kc, apanel, bpanel, C + (ib + i) * ldc + jc + j, ldc, alpha, beta_eff);
                      continue;
                    }
                    ukr(kc, apanel, bpanel, edge, nr, alpha, T(0));
                  }
                  store_tile(edge, nr, mr_valid, nr_valid, C, ldc, ib + i, jc + j, c_trans,
                             beta_eff);
                }
              }
            }
          }
          barrier();  // the packed blocks are rewritten next
        }
      }
    }
  });
}

// Skinny products (N small): only op(B) is packed (all of its N columns per
// K block); A is read in place by the micro-kernel, so the large operand is
// streamed once and never copied. Threads split the M panels.
//
// skinny_pack_b packs op(B)[pc : pc + kc, 0 : N] into np nr-wide panels at Bp;
// skinny_block then computes C (+)= alpha * op(A)[:, pc : pc + kc] * that block.
// Both run as thread tid of nt (inside a parallel_region), the threads laid
// out as a (nt / tn) x tn grid over the M x N panels; each thread packs a
// share of the B panels of its grid column.
template <typename T>
void skinny_pack_b(const KernelTable& table, Trans tb, const T* B, index_t ldb, index_t N,
                   index_t pc, index_t kc, T* Bp, int tid, int nt, int tn = 1) {
  const auto pack_b = Traits<T>::pack_b(table);
  const index_t nr = Traits<T>::blk(table).nr;
  const index_t np = (N + nr - 1) / nr;
  const index_t tm = nt / tn, pm = tid / tn, pn = tid % tn;
  const index_t n0 = np * pn / tn, n1 = np * (pn + 1) / tn;
  for (index_t jr = n0 + (n1 - n0) * pm / tm; jr < n0 + (n1 - n0) * (pm + 1) / tm; ++jr)
    pack_b(tb == Trans::Yes, B, ldb, jr * nr, std::min<index_t>(nr, N - jr * nr), pc, kc,
           Bp + jr * nr * kc);
}

template <typename T>
void skinny_block(const KernelTable& table, Trans ta, index_t M, index_t N, index_t pc,
                  index_t kc, T alpha, const T* A, index_t lda, const T* Bp, T beta, T* C,
                  index_t ldc, bool c_trans, int tid, int nt, int tn = 1) {
  const auto ukr = Traits<T>::ukr_ga(table);
  const auto ukr_packed = Traits<T>::ukr(table);
  const auto store_t = Traits<T>::store_t(table);
  const auto pack_a = Traits<T>::pack_a(table);
  const Blocking blk = Traits<T>::blk(table);
  const int mr = blk.mr, nr = blk.nr;
  const index_t np = (N + nr - 1) / nr;
  const index_t mp = (M + mr - 1) / mr;
  // a(i, k) = A[i * rs_a + k * cs_a]
  const index_t rs_a = ta == Trans::Yes ? 1 : lda, cs_a = ta == Trans::Yes ? lda : 1;
  if (!c_trans && table.small_rows > 0) {
    // The few-row kernels on the packed panels (row k of a panel at k * nr):
    // blocks of up to small_rows rows run twice the FMA chains of an mr-row
    // tile (an RNN step's 32 rows: 3 blocks, not 4 tiles and a 4 + 4 tail).
    // Threads take even shares of the (column panel, row block) items.
    const index_t nb = (M + table.small_rows - 1) / table.small_rows;
    const index_t items = np * nb;
    for (index_t it = items * tid / nt; it < items * (tid + 1) / nt; ++it) {
      const auto [jr, rb] = small_item(it, nb, np, nt);
      const index_t i = M * rb / nb, rows = M * (rb + 1) / nb - i, j = jr * nr;
      Traits<T>::small(table, rows)(kc, A + i * rs_a + pc * cs_a, rs_a, cs_a, Bp + jr * nr * kc,
                                    nr, C + i * ldc + j, ldc, alpha, beta,
                                    int(std::min<index_t>(nr, N - j)), false);
    }
    return;
  }
  const bool merge_tail = merges_tail<T>(table, M, mr);
  {
    alignas(64) T edge[gemm_detail::kMaxMR * gemm_detail::kMaxNR];
    const index_t tm = nt / tn, pm = tid / tn, pn = tid % tn;
    const index_t n0 = np * pn / tn, n1 = np * (pn + 1) / tn;
    for (index_t ir = mp * pm / tm; ir < mp * (pm + 1) / tm; ++ir) {
      const auto [i, mr_valid] = panel_rows(ir, mp, mr, M, merge_tail);
      const T* a = A + i * rs_a + pc * cs_a;
      // The kernel for this panel's rows, reading A in place; without one (a
      // partial panel and no row-count kernels, or no in-place kernels at
      // all) the panel is packed, zero-padded, for the packed kernel.
      auto ukr_rows = mr_valid == mr ? ukr : Traits<T>::ga_rows(table, mr_valid);
      const T* apanel = nullptr;
      if (!ukr_rows) {
        static thread_local Scratch scratch_edge;
        T* ap = static_cast<T*>(scratch_edge.get(sizeof(T) * mr * kc));
        pack_a(ta == Trans::Yes, A, lda, i, mr_valid, pc, kc, ap);
        apanel = ap;
      }
      for (index_t jr = n0; jr < n1; ++jr) {
        const index_t j = jr * nr;
        const index_t nr_valid = std::min<index_t>(nr, N - j);
        const T* bpanel = Bp + jr * nr * kc;
        if (nr_valid < nr && !apanel && Traits<T>::ga_cols(table, 1)) {  // masked kernel
          const auto cols = Traits<T>::ga_cols(table, mr_valid);
          if (!c_trans) {
            cols(kc, a, rs_a, cs_a, bpanel, C + i * ldc + j, ldc, alpha, beta, int(nr_valid), true);
            continue;
          }
          cols(kc, a, rs_a, cs_a, bpanel, edge, nr, alpha, T(0), int(nr_valid), true);
          store_tile(edge, nr, mr_valid, nr_valid, C, ldc, i, j, c_trans, beta);
          continue;
        }
        if (nr_valid == nr && !c_trans) {  // straight into C
          if (apanel && mr_valid == mr) {
            ukr_packed(kc, apanel, bpanel, C + i * ldc + j, ldc, alpha, beta);
            continue;
          }
          if (!apanel) {
            ukr_rows(kc, a, rs_a, cs_a, bpanel, C + i * ldc + j, ldc, alpha, beta);
            continue;
          }
        }
        if (apanel)
          ukr_packed(kc, apanel, bpanel, edge, nr, alpha, T(0));
        else
          ukr_rows(kc, a, rs_a, cs_a, bpanel, edge, nr, alpha, T(0));
        if (c_trans && store_t && mr_valid == mr && nr_valid == nr)
          store_t(edge, C + j * ldc + i, ldc, beta);
        else
          store_tile(edge, nr, mr_valid, nr_valid, C, ldc, i, j, c_trans, beta);
      }
    }
  }
}

// The transposed skinny product (c_trans) with op(B) packed whole: each
// thread accumulates a strip of mr rows of C^T over all K blocks in a small
// buffer that stays in L1, then stores each of its tiles transposed into C
// once. Block by block, every K block would pay a transposed store and a
// strided reload of C. Needs the row-count kernels (any mr_valid).
template <typename T>
void skinny_strip(const KernelTable& table, Trans ta, index_t M, index_t N, index_t K,
                  index_t kc_max, T alpha, const T* A, index_t lda, const T* Bp, T beta, T* C,
                  index_t ldc, int tid, int nt, int tn) {
  const auto ukr = Traits<T>::ukr_ga(table);
  const auto store_t = Traits<T>::store_t(table);
  const Blocking blk = Traits<T>::blk(table);
  const int mr = blk.mr, nr = blk.nr;
  const index_t np = (N + nr - 1) / nr;
  const index_t mp = (M + mr - 1) / mr;
  const index_t rs_a = ta == Trans::Yes ? 1 : lda, cs_a = ta == Trans::Yes ? lda : 1;
  const bool merge_tail = merges_tail<T>(table, M, mr);
  const index_t tm = nt / tn, pm = tid / tn, pn = tid % tn;
  const index_t n0 = np * pn / tn, n1 = np * (pn + 1) / tn;
  static thread_local Scratch scratch_strip;
  T* strip = static_cast<T*>(scratch_strip.get(sizeof(T) * mr * nr * std::max<index_t>(1, n1 - n0)));
  for (index_t ir = mp * pm / tm; ir < mp * (pm + 1) / tm; ++ir) {
    const auto [i, mr_valid] = panel_rows(ir, mp, mr, M, merge_tail);
    const auto rows = mr_valid == mr ? ukr : Traits<T>::ga_rows(table, mr_valid);
    const auto cols = Traits<T>::ga_cols(table, mr_valid);
    for (index_t pc = 0; pc < K; pc += kc_max) {
      const index_t kc = std::min(kc_max, K - pc);
      const T* a = A + i * rs_a + pc * cs_a;
      const T* bblock = Bp + np * nr * pc;
      for (index_t jr = n0; jr < n1; ++jr) {
        // The kernels skinny_block runs on these tiles (masked ones for a
        // partial column panel, where there are any): the same bits.
        const index_t nr_valid = std::min<index_t>(nr, N - jr * nr);
        T* tile = strip + (jr - n0) * mr * nr;
        if (nr_valid < nr && cols)
          cols(kc, a, rs_a, cs_a, bblock + jr * nr * kc, tile, nr, alpha, pc == 0 ? T(0) : T(1),
               int(nr_valid), true);
        else
          rows(kc, a, rs_a, cs_a, bblock + jr * nr * kc, tile, nr, alpha, pc == 0 ? T(0) : T(1));
      }
      if (pc == 0 && beta != T(0)) {
        // beta * C joins after the first K block, rounded exactly as
        // block-by-block stores do it (store_t: one fma; store_tile: multiply,
        // then add): the same bits as on one thread.
        for (index_t jr = n0; jr < n1; ++jr) {
          T* tile = strip + (jr - n0) * mr * nr;
          const index_t j = jr * nr, nr_valid = std::min<index_t>(nr, N - j);
          const bool fused = store_t && mr_valid == mr && nr_valid == nr;
          for (index_t r = 0; r < mr_valid; ++r)
            for (index_t q = 0; q < nr_valid; ++q) {
              const T c = C[(j + q) * ldc + i + r];
              T& e = tile[r * nr + q];
              e = fused ? std::fma(beta, c, e) : e + beta * c;
            }
        }
      }
    }
    for (index_t jr = n0; jr < n1; ++jr) {  // plain transposed copies (beta 0: C not read)
      const T* tile = strip + (jr - n0) * mr * nr;
      const index_t j = jr * nr, nr_valid = std::min<index_t>(nr, N - j);
      if (store_t && mr_valid == mr && nr_valid == nr)
        store_t(tile, C + j * ldc + i, ldc, T(0));
      else
        store_tile(tile, nr, mr_valid, nr_valid, C, ldc, i, j, true, T(0));
    }
  }
}

template <typename T>
void gemm_skinny(const KernelTable& table, Trans ta, Trans tb, index_t M, index_t N, index_t K,
                 T alpha, const T* A, index_t lda, const T* B, index_t ldb, T beta, T* C,
                 index_t ldc, bool c_trans) {
  const Blocking blk = Traits<T>::blk(table);
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const int threads = flops < kParallelFlops ? 1 : get_num_threads();
  const index_t np = (N + blk.nr - 1) / blk.nr;
  const index_t kc_max = balanced_kc(K, blk.kc);
  static thread_local Scratch scratch_b;
  // With more than one thread and a packed op(B) of modest size, all of it
  // is packed up front: one barrier instead of two per K block. The
  // transposed product then also accumulates C^T strips in L1 (skinny_strip):
  // +7-10% at 2 threads on Zen 3 (128x512x784 with op(B) along K), but 1-6%
  // slower on one thread, where B packed block by block stays in L2.
  const bool pack_all = threads > 1 && sizeof(T) * np * blk.nr * K <= kPackAllBytes;
  const bool strip = pack_all && c_trans && Traits<T>::ga_rows(table, 1) != nullptr;
  T* Bp = static_cast<T*>(scratch_b.get(sizeof(T) * np * blk.nr * (pack_all ? K : kc_max)));
  const index_t mp = (M + blk.mr - 1) / blk.mr;
  parallel_region(threads, [&](int tid, int nt, const Barrier& barrier) {
    // Threads split M (each reads its rows of A once) unless an N split
    // balances better: 64 rows are 11 panels, 6 + 5, but 128 columns 4 + 4.
    index_t tm, tn;
    split_grid(mp, np, nt, &tm, &tn, /*prefer_m=*/true);
    const int tn_i = int(tn);
    if (pack_all) {
      for (index_t pc = 0; pc < K; pc += kc_max)
        skinny_pack_b(table, tb, B, ldb, N, pc, std::min(kc_max, K - pc), Bp + np * blk.nr * pc,
                      tid, nt, tn_i);
      barrier();
      if (strip) {
        skinny_strip(table, ta, M, N, K, kc_max, alpha, A, lda, Bp, beta, C, ldc, tid, nt, tn_i);
        return;
      }
      for (index_t pc = 0; pc < K; pc += kc_max)
        skinny_block(table, ta, M, N, pc, std::min(kc_max, K - pc), alpha, A, lda,
                     Bp + np * blk.nr * pc, pc == 0 ? beta : T(1), C, ldc, c_trans, tid, nt,
                     tn_i);
      return;
    }
    for (index_t pc = 0; pc < K; pc += kc_max) {
      const index_t kc = std::min(kc_max, K - pc);
      skinny_pack_b(table, tb, B, ldb, N, pc, kc, Bp, tid, nt, tn_i);
      barrier();
      skinny_block(table, ta, M, N, pc, kc, alpha, A, lda, Bp, pc == 0 ? beta : T(1), C, ldc,
                   c_trans, tid, nt, tn_i);
      barrier();  // Bp is repacked next
    }
  });
}

// Small products with op(B) rows contiguous (see KernelTable::small_rows):
// no packing at all. The rows are cut into nb even blocks of at most
// small_rows, the columns into nr-wide blocks, and each (column block, row
// block) runs one kernel over the whole K (threads split these items, the
// row blocks of one column block in a row, so its B stays in cache). With
// c_trans the product is C^T, stored transposed (see ukr_small_f32).
bool runs_small(const KernelTable& table, index_t rows, index_t K, index_t cols) {
  return table.small_rows > 0 &&
         (rows <= table.small_rows || (rows <= table.small_max && K <= table.small_k &&
                                       double(rows) * double(cols) <= table.small_mn));
}

template <typename T>
void gemm_small(const KernelTable& table, Trans ta, index_t M, index_t N, index_t K, T alpha,
                const T* A, index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc,
                bool c_trans) {
  const index_t nr = Traits<T>::blk(table).nr;
  const index_t np = (N + nr - 1) / nr;
  const index_t nb = (M + table.small_rows - 1) / table.small_rows;
  const index_t rs_a = ta == Trans::Yes ? 1 : lda, cs_a = ta == Trans::Yes ? lda : 1;
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const int threads = flops < kParallelFlops ? 1 : get_num_threads();
  parallel_for(np * nb, threads, [&](index_t begin, index_t end) {
    for (index_t it = begin; it < end; ++it) {
      const auto [jr, rb] = small_item(it, nb, np, threads);
      const index_t i = M * rb / nb, rows = M * (rb + 1) / nb - i, j = jr * nr;
      Traits<T>::small(table, rows)(K, A + i * rs_a, rs_a, cs_a, B + j, ldb,
                                    c_trans ? C + j * ldc + i : C + i * ldc + j, ldc, alpha,
                                    beta, int(std::min<index_t>(nr, N - j)), c_trans);
    }
  });
}

template <typename T>
void gemm_dispatch(Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A,
                   index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const KernelTable& table = table_for(active_isa());
  const Blocking& blk = Traits<T>::blk(table);
  // Tile waste: rows padded to mr, columns to nr. When N is the short side
  // and solving C^T = op(B)^T op(A)^T pads less, do that (shape-only choice,
  // so results stay independent of the thread count).
  auto padded = [](index_t x, index_t t) { return (x + t - 1) / t * t; };
  const double waste = double(padded(M, blk.mr)) * padded(N, blk.nr);
  const double waste_t = double(padded(N, blk.mr)) * padded(M, blk.nr);
  // The skinny path packs the short side and reads the long operand in place:
  // it wins for short sides up to a bound measured per kernel family
  // (table.skinny_max), and a larger one when A runs along K (unit stride
  // per k) or op(B)^T does (the transposed product).
  // Few rows (or columns), or a small product, with the other operand's
  // rows contiguous: both operands read in place, no packing.
  if (tb == Trans::No && runs_small(table, M, K, N)) {
    gemm_small<T>(table, ta, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, false);
    return;
  }
  if (ta == Trans::Yes && runs_small(table, N, K, M)) {  // C^T = op(B)^T A
    gemm_small<T>(table, tb == Trans::Yes ? Trans::No : Trans::Yes, N, M, K, alpha, B, ldb, A,
                  lda, beta, C, ldc, true);
    return;
  }
  if (Traits<T>::ukr_ga(table) != nullptr) {
    const index_t skinny_max = table.skinny_max, contiguous_max = table.skinny_contiguous_max;
    const Trans ta_t = tb == Trans::Yes ? Trans::No : Trans::Yes;  // op(B)^T as "A"
    const Trans tb_t = ta == Trans::Yes ? Trans::No : Trans::Yes;  // op(A)^T as "B"
    const bool a_along_k = ta == Trans::No, bt_along_k = tb == Trans::Yes;
    bool plain = false, transposed = false;
    if (N <= contiguous_max && a_along_k && (N <= M || !bt_along_k))
      plain = true;
    else if (M <= contiguous_max && bt_along_k)  // C^T tiles go through a buffer and a
      transposed = true;                         // transposed store: a tighter bound
    else if (std::min(M, N) <= skinny_max)
      (N <= M ? plain : transposed) = true;
    if (plain) {
      gemm_skinny<T>(table, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, false);
      return;
    }
    if (transposed) {
      gemm_skinny<T>(table, ta_t, tb_t, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc, true);
      return;
    }
  }
  if (N < blk.nr && waste_t < 0.9 * waste) {
    const Trans ta_t = tb == Trans::Yes ? Trans::No : Trans::Yes;
    const Trans tb_t = ta == Trans::Yes ? Trans::No : Trans::Yes;
    gemm_packed<T>(table, ta_t, tb_t, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc, true);
    return;
  }
  gemm_packed<T>(table, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, false);
}

}  // namespace

void gemm(Trans ta, Trans tb, index_t M, index_t N, index_t K, float alpha, const float* A,
          index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc) noexcept {
  gemm_dispatch<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(Trans ta, Trans tb, index_t M, index_t N, index_t K, double alpha, const double* A,
          index_t lda, const double* B, index_t ldb, double beta, double* C,
          index_t ldc) noexcept {
  gemm_dispatch<double>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

double fma_peak_gflops(double seconds, int threads) noexcept {
#ifdef NEUROPIL_HAVE_AVX2
  if (active_isa() < Isa::Avx2) return 0.0;
  auto loop = &gemm_detail::fma_loop_avx2;
#ifdef NEUROPIL_HAVE_AVX512
  if (active_isa() == Isa::Avx512) loop = &gemm_detail::fma_loop_avx512;
#endif
  using clock = std::chrono::steady_clock;
  threads = std::max(threads, 1);
  const std::int64_t chunk = 1 << 20;
  std::vector<double> flops(threads, 0.0);
  const auto t0 = clock::now();
  parallel_for(threads, threads, [&](index_t begin, index_t end) {
    // Each thread runs chunks until the time is up; flops are summed after.
    for (index_t t = begin; t < end; ++t)
      while (std::chrono::duration<double>(clock::now() - t0).count() < seconds)
        flops[t] += loop(chunk);
  });
  const double dt = std::chrono::duration<double>(clock::now() - t0).count();
  double total = 0.0;
  for (double f : flops) total += f;
  return total / dt / 1e9;
#else
  (void)seconds;
  (void)threads;
  return 0.0;
#endif
}

namespace {

template <typename T>
GemmPackedB pack_layout(index_t K, index_t N) {
  const Isa isa = active_isa();
  const Blocking& blk = Traits<T>::blk(table_for(isa));
  GemmPackedB l;
  l.K = std::max<index_t>(K, 0);
  l.N = std::max<index_t>(N, 0);
  l.kc = l.K > 0 ? balanced_kc(l.K, blk.kc) : 0;
  l.isa = static_cast<int>(isa);
  l.elem = sizeof(T);
  l.size = (l.N + blk.nr - 1) / blk.nr * blk.nr * l.K;
  return l;
}

template <typename T>
void pack_b_all(const GemmPackedB& l, Trans tb, const T* B, index_t ldb, T* packed) {
  const KernelTable& table = table_for(static_cast<Isa>(l.isa));
  const index_t nr = Traits<T>::blk(table).nr;
  const index_t np = (l.N + nr - 1) / nr;
  const int threads = double(l.K) * double(l.N) < 1e6 ? 1 : get_num_threads();
  parallel_region(threads, [&](int tid, int nt, const Barrier&) {
    for (index_t pc = 0; pc < l.K; pc += l.kc)
      skinny_pack_b(table, tb, B, ldb, l.N, pc, std::min(l.kc, l.K - pc), packed + np * nr * pc,
                    tid, nt);
  });
}

template <typename T>
void prepacked(const GemmPackedB& l, Trans ta, index_t M, T alpha, const T* A, index_t lda,
               const T* packed, T beta, T* C, index_t ldc, int max_threads) {
  if (M <= 0 || l.N <= 0) return;
  if (l.K <= 0 || alpha == T(0)) {
    scale_c(M, l.N, beta, C, ldc);
    return;
  }
  const KernelTable& table = table_for(static_cast<Isa>(l.isa));
  const index_t nr = Traits<T>::blk(table).nr;
  const index_t np = (l.N + nr - 1) / nr;
  const double flops = 2.0 * double(M) * double(l.N) * double(l.K);
  const int threads = flops < kParallelFlops ? 1 : std::min(std::max(max_threads, 1),
                                                            get_num_threads());
  // Each thread owns the same rows of C in every K block: no barrier needed.
  parallel_region(threads, [&](int tid, int nt, const Barrier&) {
    for (index_t pc = 0; pc < l.K; pc += l.kc)
      skinny_block(table, ta, M, l.N, pc, std::min(l.kc, l.K - pc), alpha, A, lda,
                   packed + np * nr * pc, pc == 0 ? beta : T(1), C, ldc, false, tid, nt);
  });
}

}  // namespace

GemmPackedB gemm_pack_b_layout(int dtype_bytes, index_t K, index_t N) noexcept {
  return dtype_bytes == 4 ? pack_layout<float>(K, N) : pack_layout<double>(K, N);
}

void gemm_pack_b(const GemmPackedB& layout, Trans tb, const float* B, index_t ldb,
                 float* packed) noexcept {
  pack_b_all<float>(layout, tb, B, ldb, packed);
}
void gemm_pack_b(const GemmPackedB& layout, Trans tb, const double* B, index_t ldb,
                 double* packed) noexcept {
  pack_b_all<double>(layout, tb, B, ldb, packed);
}

void gemm_prepacked_b(const GemmPackedB& layout, Trans ta, index_t M, float alpha,
                      const float* A, index_t lda, const float* packed, float beta, float* C,
                      index_t ldc, int max_threads) noexcept {
  prepacked<float>(layout, ta, M, alpha, A, lda, packed, beta, C, ldc, max_threads);
}
void gemm_prepacked_b(const GemmPackedB& layout, Trans ta, index_t M, double alpha,
                      const double* A, index_t lda, const double* packed, double beta, double* C,
                      index_t ldc, int max_threads) noexcept {
  prepacked<double>(layout, ta, M, alpha, A, lda, packed, beta, C, ldc, max_threads);
}

}  // namespace neuropil
