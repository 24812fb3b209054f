// GEMM skinny and small paths, and the pack-once API (see driver.h and
// neuropil/gemm.h). Skinny products pack only op(B) and read A in place;
// small ones read both operands in place; the pack-once API packs op(B)
// once in the skinny path's layout and multiplies it many times.
#include <algorithm>
#include <cmath>
#include <vector>

#include "driver.h"

namespace neuropil {
namespace gemm_driver {
namespace {

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

}  // namespace

template <typename T>
void gemm_skinny(const KernelTable& table, Trans ta, Trans tb, index_t M, index_t N, index_t K,
                 T alpha, const T* A, index_t lda, const T* B, index_t ldb, T beta, T* C,
                 index_t ldc, bool c_trans) {
  const Blocking blk = Traits<T>::blk(table);
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const int threads = flops < kSkinnyParallelFlops ? 1 : get_num_threads();
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
// block) runs one kernel over the whole K (threads split these items in the
// order small_item gives). With c_trans the product is C^T, stored
// transposed (see ukr_small_f32).
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

template void gemm_skinny<float>(const KernelTable&, Trans, Trans, index_t, index_t, index_t,
                                 float, const float*, index_t, const float*, index_t, float,
                                 float*, index_t, bool);
template void gemm_skinny<double>(const KernelTable&, Trans, Trans, index_t, index_t, index_t,
                                  double, const double*, index_t, const double*, index_t,
                                  double, double*, index_t, bool);
template void gemm_small<float>(const KernelTable&, Trans, index_t, index_t, index_t, float,
                                const float*, index_t, const float*, index_t, float, float*,
                                index_t, bool);
template void gemm_small<double>(const KernelTable&, Trans, index_t, index_t, index_t, double,
                                 const double*, index_t, const double*, index_t, double, double*,
                                 index_t, bool);

}  // namespace gemm_driver

namespace gemm_driver {
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
}  // namespace gemm_driver

using gemm_driver::pack_b_all;
using gemm_driver::pack_layout;
using gemm_driver::prepacked;

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
