"""GEMM against numpy.matmul and the reference twin on hostile shapes."""
import itertools

import numpy as np
import pytest

import neuropil
from neuropil import _kernels as K
from neuropil.functional import gemm

# (M, N, K): 1, micro-kernel sizes +-1 (6x16 / 6x8 / 4x8), block edges, skinny, wide.
SHAPES = [
    (1, 1, 1), (2, 3, 1), (1, 7, 5), (7, 1, 3), (7, 17, 5), (15, 16, 17), (16, 15, 31),
    (17, 31, 16), (31, 17, 7), (127, 129, 33), (129, 127, 257), (145, 3, 300),
    (257, 33, 129), (6, 16, 256), (5, 15, 255), (300, 2, 513), (2, 300, 513),
    (1000, 7, 17), (7, 1000, 17), (128, 10, 512),
]
TRANS = list(itertools.product([False, True], repeat=2))
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _operands(rng, m, n, k, ta, tb, dtype):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


def _expected(a, b, ta, tb, alpha=1.0, beta=0.0, c=None):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    r = alpha * ((a64.T if ta else a64) @ (b64.T if tb else b64))
    if beta != 0.0:
        r = r + beta * c.astype(np.float64)
    return r


def _tol(dtype, k):
    t = TOL[dtype]
    return dict(rtol=t["rtol"] * max(1, k) ** 0.5, atol=t["atol"] * max(1, k))


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_matches_numpy(rng, isa_path, isa, dtype, ta, tb, m, n, k):
    if isa not in K.available_isas():
        pytest.skip(f"{isa} kernels not available on this CPU")
    neuropil.set_isa(isa)
    a, b = _operands(rng, m, n, k, ta, tb, dtype)
    out = np.full((m, n), np.nan, dtype=dtype)  # beta = 0 must never read out
    res = gemm(a, b, trans_a=ta, trans_b=tb, out=out)
    assert res is out
    np.testing.assert_allclose(out, _expected(a, b, ta, tb), **_tol(dtype, k))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0), (-1.5, 0.25), (2.0, 0.0)])
def test_gemm_alpha_beta(rng, dtype, ta, tb, alpha, beta):
    for m, n, k in [(7, 17, 5), (129, 33, 300), (1, 1, 1), (13, 40, 600)]:
        a, b = _operands(rng, m, n, k, ta, tb, dtype)
        c = rng.standard_normal((m, n)).astype(dtype)
        expect = _expected(a, b, ta, tb, alpha, beta, c)
        gemm(a, b, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, out=c)
        np.testing.assert_allclose(c, expect, **_tol(dtype, k))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_reference_twin_matches_numpy(rng, dtype):
    for (m, n, k), (ta, tb) in itertools.product([(7, 17, 5), (33, 9, 65)], TRANS):
        a, b = _operands(rng, m, n, k, ta, tb, dtype)
        out = np.full((m, n), np.nan, dtype=dtype)
        K.gemm(a, b, out, ta, tb, 1.0, 0.0, reference=True)
        np.testing.assert_allclose(out, _expected(a, b, ta, tb), **_tol(dtype, k))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_paths_match_reference(rng, isa_path, dtype):
    m, n, k = 131, 67, 301
    a, b = _operands(rng, m, n, k, False, True, dtype)
    ref = np.empty((m, n), dtype)
    K.gemm(a, b, ref, False, True, 1.0, 0.0, reference=True)
    for isa in K.available_isas():
        neuropil.set_isa(isa)
        out = gemm(a, b, trans_b=True)
        np.testing.assert_allclose(out, ref, **_tol(dtype, k))


def test_avx2_and_generic_agree(rng, isa_path):
    if "avx2" not in K.available_isas():
        pytest.skip("AVX2 kernels not available on this CPU")
    a = rng.standard_normal((200, 300)).astype(np.float32)
    b = rng.standard_normal((300, 150)).astype(np.float32)
    neuropil.set_isa("generic")
    g = gemm(a, b)
    neuropil.set_isa("avx2")
    v = gemm(a, b)
    np.testing.assert_allclose(g, v, rtol=1e-4, atol=1e-4)
    assert not np.array_equal(g.view(np.uint32), np.zeros_like(g).view(np.uint32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_dimensions(rng, dtype):
    a = np.zeros((4, 0), dtype)
    b = np.zeros((0, 5), dtype)
    out = gemm(a, b)
    assert out.shape == (4, 5) and np.all(out == 0)  # K = 0, beta = 0: zeros, out not read
    c = rng.standard_normal((4, 5)).astype(dtype)
    expect = 3.0 * c
    gemm(a, b, beta=3.0, out=c)  # K = 0: out = beta * out
    np.testing.assert_allclose(c, expect)
    assert gemm(np.zeros((0, 3), dtype), np.zeros((3, 5), dtype)).shape == (0, 5)
    assert gemm(np.zeros((2, 3), dtype), np.zeros((3, 0), dtype)).shape == (2, 0)


def test_nan_in_inputs_propagates(rng):
    a = rng.standard_normal((9, 20)).astype(np.float32)
    b = rng.standard_normal((20, 17)).astype(np.float32)
    a[3, 7] = np.nan
    out = gemm(a, b)
    assert np.all(np.isnan(out[3])) and not np.any(np.isnan(np.delete(out, 3, axis=0)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", TRANS)
def test_bitwise_identical_for_1_and_2_threads(rng, threads, dtype, ta, tb):
    # (64, 128, 600): the skinny path splits N between two threads (11 row
    # panels split 6 + 5, 8 column panels 4 + 4).
    for m, n, k in [(1024, 96, 300), (130, 513, 257), (64, 3136, 40), (64, 128, 600),
                    (7, 17, 5)]:
        a, b = _operands(rng, m, n, k, ta, tb, dtype)
        neuropil.set_num_threads(1)
        one = gemm(a, b, trans_a=ta, trans_b=tb)
        neuropil.set_num_threads(2)
        two = gemm(a, b, trans_a=ta, trans_b=tb)
        assert one.tobytes() == two.tobytes(), (m, n, k)
        np.testing.assert_allclose(two, _expected(a, b, ta, tb), **_tol(dtype, k))


def test_non_contiguous_and_fortran_inputs(rng):
    base = rng.standard_normal((40, 60))
    a = base[::2, ::3]  # strided view: copied
    b = np.asfortranarray(rng.standard_normal((20, 11)))  # F-order: used as a transposed C array
    out = gemm(a, b)
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)
    at = np.asfortranarray(rng.standard_normal((20, 20)))
    np.testing.assert_allclose(gemm(at, b, trans_a=True), at.T @ b, rtol=1e-12, atol=1e-12)


def test_large_k_crosses_blocks(rng):
    a = rng.standard_normal((33, 2000)).astype(np.float32)
    b = rng.standard_normal((2000, 3200)).astype(np.float32)  # N > nc, K > kc
    np.testing.assert_allclose(gemm(a, b), _expected(a, b, False, False), **_tol(np.float32, 2000))


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", TRANS)
def test_pack_once_api_matches_numpy(rng, isa_path, isa, dtype, ta, tb):
    """gemm_pack_b + gemm_prepacked_b (what the recurrent layers use per time step)."""
    if isa not in K.available_isas():
        pytest.skip(f"{isa} kernels not available on this CPU")
    neuropil.set_isa(isa)
    for m, n, k in [(1, 1, 1), (7, 17, 5), (32, 512, 128), (13, 33, 600), (5, 3, 257),
                    (130, 40, 9)]:
        a, b = _operands(rng, m, n, k, ta, tb, dtype)
        out = np.full((m, n), np.nan, dtype)
        K.gemm_prepacked(a, b, out, ta, tb, 1.0, 0.0)
        np.testing.assert_allclose(out, _expected(a, b, ta, tb), **_tol(dtype, k))
        c = rng.standard_normal((m, n)).astype(dtype)
        expect = _expected(a, b, ta, tb, 0.5, 1.0, c)
        K.gemm_prepacked(a, b, c, ta, tb, 0.5, 1.0)
        np.testing.assert_allclose(c, expect, **_tol(dtype, k))


def test_pack_once_api_bitwise_for_1_and_2_threads(rng, threads):
    a, b = _operands(rng, 96, 200, 300, False, True, np.float32)
    outs = []
    for n in (1, 2):
        neuropil.set_num_threads(n)
        o = np.empty((96, 200), np.float32)
        K.gemm_prepacked(a, b, o, False, True, 1.0, 0.0)
        outs.append(o)
    assert outs[0].tobytes() == outs[1].tobytes()
    np.testing.assert_allclose(outs[0], a @ b.T, rtol=1e-4, atol=1e-4)


# Packed path (both sides > 128) with every tail of M mod 6: 3-5 rows run a
# row-count kernel on the packed panel, 1-2 rows join the last full panel as
# 4 + (2 + tail) rows read in place. K = 300 gives two K blocks (beta applied
# once), and 4001 rows several blocks of A rows (each block fills 3/4 of L2,
# the last one with a tail).
@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("m", [133, 134, 135, 136, 137, 138, 4001])
def test_packed_path_row_tails(rng, isa_path, threads, isa, ta, tb, m):
    if isa not in K.available_isas():
        pytest.skip(f"{isa} kernels not available on this CPU")
    neuropil.set_isa(isa)
    n, k = 200 if m < 1000 else 40 * 6, 300
    _check_1_and_2_threads(rng, m, n, k, ta, tb, 1.5, 0.5)


def _check_1_and_2_threads(rng, m, n, k, ta, tb, alpha, beta):
    """float32 alpha * op(a) op(b) + beta * c on 1 and 2 threads: right, and the same bits."""
    a, b = _operands(rng, m, n, k, ta, tb, np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    results = []
    for t in (1, 2):
        neuropil.set_num_threads(t)
        out = c.copy()
        gemm(a, b, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, out=out)
        results.append(out)
    np.testing.assert_allclose(results[0], _expected(a, b, ta, tb, alpha, beta, c),
                               **_tol(np.float32, k))
    assert results[0].tobytes() == results[1].tobytes()


# Products with op(B) along K and a short M run transposed (C^T = op(B)^T
# op(A)^T); on 2 threads they accumulate C^T strips and store them once,
# on 1 thread block by block. Same bits either way, for any alpha and beta,
# with partial tiles in both directions and a merged row tail (301 rows).
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (1.5, 0.3), (-0.75, 1.0)])
@pytest.mark.parametrize("m,n,k", [(100, 301, 200), (128, 512, 300), (64, 3136, 40),
                                   (7, 100, 33), (37, 128, 600)])
def test_transposed_skinny_bitwise_for_1_and_2_threads(rng, threads, ta, alpha, beta, m, n, k):
    _check_1_and_2_threads(rng, m, n, k, ta, True, alpha, beta)


# Every partial column panel (N mod 16 and mod 32: the AVX-512 tiles are 32
# floats or 16 doubles wide, partial panels run masked kernels, at most half a
# panel a one-vector kernel), every row tail (M mod 6), K = 1 and odd K (the
# one-vector kernel pairs k steps), both skinny layouts and the packed path.
PANEL_NS = list(range(1, 34)) + [47, 48, 49, 63, 65]
PANEL_MS = [1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 17]


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", TRANS)
def test_partial_panels_every_tail(rng, isa_path, isa, dtype, ta, tb):
    if isa not in K.available_isas():
        pytest.skip(f"{isa} kernels not available on this CPU")
    neuropil.set_isa(isa)
    for k in (1, 2, 3, 40):
        for m in PANEL_MS:
            for n in PANEL_NS:
                for mm, nn in ((m, n), (n, m)):
                    a, b = _operands(rng, mm, nn, k, ta, tb, dtype)
                    out = np.full((mm, nn), np.nan, dtype=dtype)
                    gemm(a, b, trans_a=ta, trans_b=tb, out=out)
                    np.testing.assert_allclose(out, _expected(a, b, ta, tb), **_tol(dtype, k),
                                               err_msg=f"{mm}x{nn}x{k}")


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-1.5, 0.25), (0.5, 1.0)])
def test_partial_panels_alpha_beta(rng, isa_path, isa, dtype, ta, tb, alpha, beta):
    """Masked kernels on the skinny and the packed paths: beta applied once, and
    nothing written past the valid columns (the last row's run into a NaN guard)."""
    if isa not in K.available_isas():
        pytest.skip(f"{isa} kernels not available on this CPU")
    neuropil.set_isa(isa)
    for m, n, k in [(7, 10, 300), (128, 10, 512), (512, 10, 128), (10, 128, 33),
                    (137, 145, 300), (134, 129, 17), (139, 150, 1), (136, 161, 257),
                    (48, 48, 48), (13, 17, 600)]:
        a, b = _operands(rng, m, n, k, ta, tb, dtype)
        buf = np.full(m * n + 64, np.nan, dtype=dtype)
        c = buf[:m * n].reshape(m, n)
        c[...] = rng.standard_normal((m, n)) if beta != 0.0 else np.nan
        expect = _expected(a, b, ta, tb, alpha, beta, np.nan_to_num(c))
        K.gemm(a, b, c, ta, tb, alpha, beta)
        np.testing.assert_allclose(c, expect, **_tol(dtype, k), err_msg=f"{m}x{n}x{k}")
        assert np.all(np.isnan(buf[m * n:])), f"{m}x{n}x{k} wrote past C"


# Small products run in place as row blocks of at most 12 (AVX-512): every
# block count and tail, K around the bound of that path (256), both layouts.
@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", TRANS)
def test_small_products_row_blocks(rng, isa_path, isa, dtype, ta, tb):
    if isa not in K.available_isas():
        pytest.skip(f"{isa} kernels not available on this CPU")
    neuropil.set_isa(isa)
    for m, n, k in [(13, 33, 7), (24, 48, 256), (25, 17, 257), (37, 100, 255), (100, 37, 64),
                    (255, 129, 31), (256, 256, 256), (257, 40, 9), (60, 1090, 64),
                    (1090, 60, 64), (129, 15, 200)]:
        a, b = _operands(rng, m, n, k, ta, tb, dtype)
        out = np.full((m, n), np.nan, dtype=dtype)
        gemm(a, b, trans_a=ta, trans_b=tb, out=out)
        np.testing.assert_allclose(out, _expected(a, b, ta, tb), **_tol(dtype, k),
                                   err_msg=f"{m}x{n}x{k}")
        c = rng.standard_normal((m, n)).astype(dtype)
        expect = _expected(a, b, ta, tb, -0.5, 0.75, c)
        K.gemm(a, b, c, ta, tb, -0.5, 0.75)
        np.testing.assert_allclose(c, expect, **_tol(dtype, k), err_msg=f"{m}x{n}x{k} beta")


# Partial column panels on 1 and 2 threads: the masked kernels run the same
# tiles whatever the split (the transposed products' L1 strips included), and
# few-row products (12 rows or columns, in place) split their column blocks.
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("m,n,k", [(512, 10, 128), (128, 10, 512), (100, 330, 200),
                                   (128, 784, 512), (64, 3136 + 9, 40), (301, 200, 300),
                                   (37, 120, 600), (12, 2001, 300), (2001, 11, 300),
                                   (200, 300, 100), (250, 40, 256)])
def test_partial_panels_bitwise_for_1_and_2_threads(rng, threads, ta, tb, m, n, k):
    _check_1_and_2_threads(rng, m, n, k, ta, tb, 1.5, 0.5)
    _check_1_and_2_threads(rng, m, n, k, ta, tb, 1.0, 0.0)


# A C larger than twice the L2 whose rows are whole cache lines apart (N a
# multiple of 64 bytes) has its column panels aligned to C's lines (the first
# panel cut short): the bits must not depend on where C starts, on 1 or 2
# threads, and nothing outside C is written.
@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
@pytest.mark.parametrize("dtype,m,n", [(np.float32, 1030, 1104), (np.float64, 731, 776),
                                       (np.float32, 1030, 1100)])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, True)])
def test_result_independent_of_output_alignment(rng, isa_path, threads, isa, dtype, m, n, ta, tb):
    if isa not in K.available_isas():
        pytest.skip(f"{isa} kernels not available on this CPU")
    neuropil.set_isa(isa)
    k = 300
    a, b = _operands(rng, m, n, k, ta, tb, dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    results = []
    for offset, nthreads in [(0, 1), (1, 2), (4, 1), (7, 2), (12, 1)]:
        neuropil.set_num_threads(nthreads)
        buf = np.full(m * n + offset + 32, np.nan, dtype=dtype)
        c = buf[offset:offset + m * n].reshape(m, n)
        c[...] = c0
        K.gemm(a, b, c, ta, tb, 1.5, 0.5)
        assert np.isnan(buf[:offset]).all() and np.isnan(buf[offset + m * n:]).all()
        results.append(c.copy())
    np.testing.assert_allclose(results[0], _expected(a, b, ta, tb, 1.5, 0.5, c0), **_tol(dtype, k))
    for r in results[1:]:
        assert r.tobytes() == results[0].tobytes()
