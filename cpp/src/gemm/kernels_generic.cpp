// Portable GEMM micro-kernels: plain loops the compiler vectorises for the
// baseline ISA (SSE2 on x86-64, NEON on aarch64).
#include "kernels.h"

namespace neuropil {
namespace gemm_detail {
namespace {

template <typename T, int MR, int NR>
void ukr_generic(std::int64_t kc, const T* a, const T* b, T* c, std::int64_t ldc, T alpha,
                 T beta) {
  T acc[MR][NR] = {};
  for (std::int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < MR; ++i) {
      const T ai = a[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < MR; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0)) {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
}

template <typename T, int MR>
void pack_a(bool trans, const T* A, std::int64_t lda, std::int64_t i0, std::int64_t mr_valid,
            std::int64_t p0, std::int64_t kc, T* dst) {
  if (!trans) {
    for (std::int64_t i = 0; i < mr_valid; ++i) {
      const T* src = A + (i0 + i) * lda + p0;
      for (std::int64_t p = 0; p < kc; ++p) dst[p * MR + i] = src[p];
    }
  } else {
    for (std::int64_t p = 0; p < kc; ++p) {
      const T* src = A + (p0 + p) * lda + i0;
      for (std::int64_t i = 0; i < mr_valid; ++i) dst[p * MR + i] = src[i];
    }
  }
  for (std::int64_t p = 0; p < kc; ++p)
    for (std::int64_t i = mr_valid; i < MR; ++i) dst[p * MR + i] = T(0);
}

template <typename T, int NR>
void pack_b(bool trans, const T* B, std::int64_t ldb, std::int64_t j0, std::int64_t nr_valid,
            std::int64_t p0, std::int64_t kc, T* dst) {
  if (!trans) {
    for (std::int64_t p = 0; p < kc; ++p) {
      const T* src = B + (p0 + p) * ldb + j0;
      T* d = dst + p * NR;
      if (nr_valid == NR) {
        for (int j = 0; j < NR; ++j) d[j] = src[j];
      } else {
        std::int64_t j = 0;
        for (; j < nr_valid; ++j) d[j] = src[j];
        for (; j < NR; ++j) d[j] = T(0);
      }
    }
  } else {
    for (std::int64_t j = 0; j < nr_valid; ++j) {
      const T* src = B + (j0 + j) * ldb + p0;
      for (std::int64_t p = 0; p < kc; ++p) dst[p * NR + j] = src[p];
    }
    for (std::int64_t p = 0; p < kc; ++p)
      for (std::int64_t j = nr_valid; j < NR; ++j) dst[p * NR + j] = T(0);
  }
}

}  // namespace

void pack_a_generic_f32_mr6(bool t, const float* A, std::int64_t lda, std::int64_t i0,
                            std::int64_t mv, std::int64_t p0, std::int64_t kc, float* dst) {
  pack_a<float, 6>(t, A, lda, i0, mv, p0, kc, dst);
}
void pack_b_generic_f32_nr16(bool t, const float* B, std::int64_t ldb, std::int64_t j0,
                             std::int64_t nv, std::int64_t p0, std::int64_t kc, float* dst) {
  pack_b<float, 16>(t, B, ldb, j0, nv, p0, kc, dst);
}
void pack_b_generic_f32_nr32(bool t, const float* B, std::int64_t ldb, std::int64_t j0,
                             std::int64_t nv, std::int64_t p0, std::int64_t kc, float* dst) {
  pack_b<float, 32>(t, B, ldb, j0, nv, p0, kc, dst);
}
void pack_a_generic_f64_mr6(bool t, const double* A, std::int64_t lda, std::int64_t i0,
                            std::int64_t mv, std::int64_t p0, std::int64_t kc, double* dst) {
  pack_a<double, 6>(t, A, lda, i0, mv, p0, kc, dst);
}
void pack_b_generic_f64_nr8(bool t, const double* B, std::int64_t ldb, std::int64_t j0,
                            std::int64_t nv, std::int64_t p0, std::int64_t kc, double* dst) {
  pack_b<double, 8>(t, B, ldb, j0, nv, p0, kc, dst);
}

KernelTable generic_kernels() {
  KernelTable t;
  t.sgemm = &ukr_generic<float, 4, 8>;
  t.s = Blocking{4, 8, 128, 256, 2048};
  t.spack_a = &pack_a<float, 4>;
  t.spack_b = &pack_b<float, 8>;
  // The compiler-vectorised in-place-A kernel measured 2.5x slower than
  // packing A on x86-64 SSE2, so the portable path always packs.
  t.sgemm_ga = nullptr;
  for (auto& f : t.sgemm_ga_rows) f = nullptr;
  for (auto& f : t.sgemm_ga_cols) f = nullptr;
  t.sstore_t = nullptr;
  t.dgemm = &ukr_generic<double, 4, 4>;
  t.d = Blocking{4, 4, 64, 256, 1024};
  t.dpack_a = &pack_a<double, 4>;
  t.dpack_b = &pack_b<double, 4>;
  t.dgemm_ga = nullptr;
  for (auto& f : t.dgemm_ga_rows) f = nullptr;
  for (auto& f : t.dgemm_ga_cols) f = nullptr;
  t.skinny_max = 0;  // no in-place kernels: every product is packed
  t.skinny_contiguous_max = 0;
  t.small_rows = 0;
  t.small_max = 0;
  t.small_k = 0;
  t.small_mn = 0;
  for (auto& f : t.sgemm_small) f = nullptr;
  for (auto& f : t.dgemm_small) f = nullptr;
  return t;
}

}  // namespace gemm_detail
}  // namespace neuropil
