// GEMM driver: GotoBLAS/BLIS loop nest over packed panels.
//
//   for jc in N by nc:                      B block [kc, nc] lives in L3
//     for pc in K by kc:                    (never split across threads)
//       for mb in M by mb_rows:             A block [mb_rows, kc] packed once
//         pack op(B)[pc:, jc:] into nr-wide panels, op(A)[mb:, pc:] into mr-tall panels
//         threads split the tile grid (M panels x N panels) into tm x tn parts;
//         each part: for ic by mc: for jr: for ir: micro-kernel
// beta is applied on the first pc block only (later blocks accumulate with 1).
// Edge tiles run masked kernels or the same micro-kernel into a local buffer
// (zero-padded panels), so no kernel ever reads or writes outside the matrices.
// This file: the table choice, the packed path, the dispatch between paths
// and the public entry points; the skinny and small paths and the pack-once
// API live in gemm_skinny.cpp, the helpers both share in driver.h.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

#include "driver.h"

namespace neuropil {
namespace gemm_driver {
namespace {

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

}  // namespace

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

}  // namespace gemm_driver

void gemm_blocking(int dtype_bytes, int* mr, int* nr, index_t* mc, index_t* kc, index_t* nc) {
  const gemm_driver::KernelTable& t = gemm_driver::table_for(active_isa());
  const gemm_driver::Blocking& b = dtype_bytes == 4 ? t.s : t.d;
  *mr = b.mr;
  *nr = b.nr;
  *mc = b.mc;
  *kc = b.kc;
  *nc = b.nc;
}

namespace gemm_driver {
namespace {

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

  // Rows of A packed at once: as many as fill 3/4 of L2 (at least mc), so the
  // packed block is still in L2 when its last mc rows are used. Eight mc
  // blocks (the earlier rule) made 3 MB for double at kc = 192: 2048^2 ran
  // 0.92-0.95x NumPy, and 0.99x in 1.5 MB blocks; one mc block at a time cost
  // the AVX2 kernels 4% on 1024^2 (three passes over B where one fits). M is
  // cut into equal blocks: no short last block reloading every B panel.
  const index_t kc_max = balanced_kc(K, blk.kc);
  const double l2_bytes = cpu_info().l2_bytes > 0 ? double(cpu_info().l2_bytes) : 1 << 20;
  const index_t fit_rows =
      std::max<index_t>(blk.mc, index_t(0.75 * l2_bytes / (double(kc_max) * sizeof(T))));
  const index_t mblocks = (M + fit_rows - 1) / fit_rows;
  const index_t mb_rows = ((M + mblocks - 1) / mblocks + mr - 1) / mr * mr;
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
}  // namespace gemm_driver

void gemm(Trans ta, Trans tb, index_t M, index_t N, index_t K, float alpha, const float* A,
          index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc) noexcept {
  gemm_driver::gemm_dispatch<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(Trans ta, Trans tb, index_t M, index_t N, index_t K, double alpha, const double* A,
          index_t lda, const double* B, index_t ldb, double beta, double* C,
          index_t ldc) noexcept {
  gemm_driver::gemm_dispatch<double>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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

}  // namespace neuropil
