"""max_pool2d / avg_pool2d and their layers against loop references."""
import numpy as np
import pytest

import neuropil
import neuropil.functional as F
from neuropil import nn

from _conv_reference import avg_pool_ref, gradcheck_module, max_pool_ref

# (N, C, H, W, kernel, stride, padding)
CASES = [
    (1, 1, 4, 4, (2, 2), (2, 2), (0, 0)),
    (2, 3, 7, 5, (2, 2), (2, 2), (0, 0)),     # H, W not divisible by the pool
    (1, 2, 5, 6, (3, 3), (2, 2), (1, 1)),     # padding
    (2, 1, 9, 8, (3, 2), (1, 3), (1, 1)),     # non-square, stride > kernel in W
    (1, 4, 1, 1, (1, 1), (1, 1), (0, 0)),     # tiny
    (3, 2, 3, 3, (3, 3), (1, 1), (1, 1)),     # window as large as the image
    (1, 17, 6, 6, (4, 4), (5, 5), (2, 2)),    # stride > kernel, many channels
    (2, 2, 6, 19, (2, 2), (2, 2), (0, 0)),    # 2x2 fast path: SIMD groups of 4 + remainder
]
IDS = [f"N{c[0]}C{c[1]}H{c[2]}W{c[3]}k{c[4]}s{c[5]}p{c[6]}" for c in CASES]


def test_issue_example():
    x = np.array([[12, 20, 30, 0], [8, 12, 2, 0], [34, 70, 37, 4], [112, 100, 25, 12]],
                 np.float32)[None, None]
    np.testing.assert_array_equal(F.max_pool2d(x, 2)[0, 0], [[20, 30], [112, 37]])
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x)[0, 0], [[20, 30], [112, 37]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_max_pool_matches_reference(case, dtype, rng):
    N, C, H, W, k, s, p = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    x[x > 1.0] = 1.0  # many ties
    y, idx = F.max_pool2d(x, k, s, p, return_indices=True)
    ry, ridx = max_pool_ref(x, k, s, p)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = F.max_pool2d_backward(dy, idx, x.shape, k, s, p)
    rdx = np.zeros((N * C, H * W))
    for pl in range(N * C):
        np.add.at(rdx[pl], ridx.reshape(N * C, -1)[pl], dy.reshape(N * C, -1)[pl])
    np.testing.assert_allclose(dx, rdx.reshape(x.shape), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_avg_pool_matches_reference(case, dtype, cip, rng):
    N, C, H, W, k, s, p = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    y = F.avg_pool2d(x, k, s, p, count_include_pad=cip)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(y, avg_pool_ref(x, k, s, p, cip), **tol)
    # backward is the adjoint of forward: <avg(x), g> == <x, avg_backward(g)>
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = F.avg_pool2d_backward(g, x.shape, k, s, p, cip)
    assert np.isclose(np.vdot(y.astype(np.float64), g), np.vdot(x.astype(np.float64), dx),
                      rtol=1e-4 if dtype == np.float32 else 1e-10)
    # and matches the reference's Jacobian applied to g
    e = np.zeros(x.size)
    jac_t = np.empty(x.size)
    for i in range(x.size):
        e[:] = 0
        e[i] = 1
        jac_t[i] = np.vdot(avg_pool_ref(e.reshape(x.shape), k, s, p, cip), g)
    np.testing.assert_allclose(dx.ravel(), jac_t, **tol) if x.size <= 200 else None


def test_max_pool_ties_and_nan():
    x = np.ones((1, 1, 4, 4))
    _, idx = F.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(idx[0, 0], [[0, 2], [8, 10]])  # first element of each window
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 3, 2] = np.nan
    x[0, 0, 2, 3] = np.nan
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 5
    assert np.isnan(y[0, 0, 1, 1]) and idx[0, 0, 1, 1] == 11  # first NaN in row-major order
    assert y[0, 0, 0, 1] == 7 and y[0, 0, 1, 0] == 13
    assert np.isnan(F.avg_pool2d(x, 2)[0, 0, 0, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_2x2_fast_path_nan_and_ties(dtype, rng):
    x = rng.integers(0, 3, (2, 3, 8, 22)).astype(dtype)  # many ties
    x[0, 0, 0, 5] = np.nan
    x[0, 1, 3, 8] = np.nan
    x[0, 1, 2, 9] = np.nan  # two NaNs in one window: the first (row-major) wins
    x[1, 2, 7, 21] = np.nan
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    ry, ridx = max_pool_ref(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    assert idx[0, 1, 1, 4] == 2 * 22 + 9


def test_pool_thread_count_is_bitwise_irrelevant(rng, threads):
    x = rng.standard_normal((5, 7, 13, 11)).astype(np.float32)
    res = []
    for t in (1, 2):
        neuropil.set_num_threads(t)
        y, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
        a = F.avg_pool2d(x, 3, 2, 1)
        res.append((y, idx, F.max_pool2d_backward(np.sin(y), idx, x.shape, 3, 2, 1), a,
                    F.avg_pool2d_backward(np.sin(a), x.shape, 3, 2, 1)))
    for u, v in zip(*res):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("layer", [
    lambda: nn.MaxPool2d(2), lambda: nn.MaxPool2d(3, stride=2, padding=1),
    lambda: nn.MaxPool2d((2, 3), stride=(1, 2)),
    lambda: nn.AvgPool2d(2), lambda: nn.AvgPool2d(3, stride=2, padding=1),
    lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
])
def test_pool_layer_gradcheck(layer, rng):
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 10.0  # distinct: no max ties
    gradcheck_module(layer().double(), x, rng)


def test_pool_layer_repr_and_dtype():
    assert "kernel_size=(2, 2), stride=(2, 2)" in repr(nn.MaxPool2d(2))
    assert "count_include_pad=False" in repr(nn.AvgPool2d(2, count_include_pad=False))
    y = nn.AvgPool2d(2)(np.ones((1, 1, 4, 4), np.float32))
    assert y.dtype == np.float32 and y.shape == (1, 1, 2, 2)


def test_pool_bad_inputs(rng):
    x = rng.standard_normal((1, 2, 4, 4))
    with pytest.raises(ValueError, match="at most half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="larger than the input"):
        F.avg_pool2d(x, 5)
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        F.max_pool2d(x, 0)
    with pytest.raises(TypeError, match="float32 or float64"):
        F.max_pool2d(x.astype(np.int64), 2)
    with pytest.raises(ValueError, match=r"x must be 4-D with shape \(N, C, H, W\)"):
        F.avg_pool2d(x[0], 2)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    bad = idx.copy()
    bad[0, 0, 0, 0] = 99
    with pytest.raises(ValueError, match="outside"):
        F.max_pool2d_backward(y, bad, x.shape, 2)
    bad[0, 0, 0, 0] = 2  # inside the plane, but in another output's window
    with pytest.raises(ValueError, match="outside"):
        F.max_pool2d_backward(y, bad, x.shape, 2)
    with pytest.raises(TypeError, match="indices must be int64"):
        F.max_pool2d_backward(y, idx.astype(np.int32), x.shape, 2)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 2, 2\)"):
        F.avg_pool2d_backward(np.zeros((1, 2, 3, 2)), x.shape, 2)
    with pytest.raises(ValueError, match=r"MaxPool2d.*expected input of shape \(N, C, H, W\)"):
        nn.MaxPool2d(2)(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="at most half"):
        nn.AvgPool2d(2, padding=2)
    with pytest.raises(RuntimeError, match="before forward"):
        nn.MaxPool2d(2).backward(np.zeros((1, 1, 1, 1)))


# ceil_mode: (N, C, H, W, kernel, stride, padding)
CEIL_CASES = [
    (1, 2, 5, 5, (2, 2), (2, 2), (0, 0)),    # odd size: one extra, partial window
    (2, 1, 7, 6, (3, 3), (2, 2), (1, 1)),    # padded
    (1, 1, 6, 6, (3, 3), (3, 3), (1, 1)),    # the extra window would start in the right padding
    (1, 3, 8, 9, (2, 3), (3, 2), (1, 1)),
    (1, 1, 4, 4, (2, 2), (2, 2), (1, 1)),    # last window starts at H + P: dropped
    (2, 2, 9, 10, (4, 3), (3, 4), (2, 1)),
]
CEIL_IDS = [f"N{c[0]}C{c[1]}H{c[2]}W{c[3]}k{c[4]}s{c[5]}p{c[6]}" for c in CEIL_CASES]


@pytest.mark.parametrize("case", CEIL_CASES, ids=CEIL_IDS)
def test_ceil_mode_pools_match_reference(case, rng):
    N, C, H, W, k, s, p = case
    x = rng.standard_normal((N, C, H, W))
    y, idx = F.max_pool2d(x, k, s, p, ceil_mode=True, return_indices=True)
    ry, ridx = max_pool_ref(x, k, s, p, ceil_mode=True)
    assert y.shape == ry.shape == F.pool2d_output_shape(x.shape, k, s, p, ceil_mode=True)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    for cip in (True, False):
        ya = F.avg_pool2d(x, k, s, p, cip, ceil_mode=True)
        np.testing.assert_allclose(ya, avg_pool_ref(x, k, s, p, cip, ceil_mode=True), rtol=1e-12)
        g = rng.standard_normal(ya.shape)
        dx = F.avg_pool2d_backward(g, x.shape, k, s, p, cip, ceil_mode=True)
        assert np.isclose(np.vdot(ya, g), np.vdot(x, dx), rtol=1e-10)
    for layer in (nn.MaxPool2d(k, s, p, ceil_mode=True), nn.AvgPool2d(k, s, p, ceil_mode=True),
                  nn.AvgPool2d(k, s, p, ceil_mode=True, count_include_pad=False)):
        gradcheck_module(layer.double(), x + 1e-3 * np.arange(x.size).reshape(x.shape), rng)


def test_ceil_mode_sizes_and_repr():
    assert F.pool2d_output_shape((1, 1, 5, 5), 2, ceil_mode=True) == (1, 1, 3, 3)
    assert F.pool2d_output_shape((1, 1, 5, 5), 2) == (1, 1, 2, 2)
    assert F.pool2d_output_shape((1, 1, 4, 4), 2, 2, 1, ceil_mode=True) == (1, 1, 3, 3)
    assert F.pool2d_output_shape((1, 1, 6, 6), 3, 3, 1, ceil_mode=True) == (1, 1, 3, 3)
    assert "ceil_mode=True" in repr(nn.MaxPool2d(2, ceil_mode=True))
    assert nn.AvgPool2d(2, 2, 0, True, False).count_include_pad is False  # PyTorch's order


def test_ceil_mode_matches_torch(rng):
    torch = pytest.importorskip("torch")
    for N, C, H, W, k, s, p in CEIL_CASES:
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        tx = torch.from_numpy(x)
        ty = torch.nn.functional.max_pool2d(tx, k, s, p, ceil_mode=True)
        np.testing.assert_array_equal(F.max_pool2d(x, k, s, p, ceil_mode=True), ty.numpy())
        for cip in (True, False):
            ta = torch.nn.functional.avg_pool2d(tx, k, s, p, ceil_mode=True, count_include_pad=cip)
            np.testing.assert_allclose(F.avg_pool2d(x, k, s, p, cip, ceil_mode=True), ta.numpy(),
                                       rtol=1e-6, atol=1e-6)
