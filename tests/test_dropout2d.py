"""Dropout2d (channel dropout): masks, scaling, statistics, train/eval, determinism."""
import numpy as np
import pytest

import neuropil
import neuropil.functional as F
from neuropil import nn
from neuropil.testing import gradcheck

DTYPES = [np.float32, np.float64]


def _plane_mask(y):
    """(N, C) booleans: which planes were kept; asserts every plane is all-kept or all-zero."""
    n, c = y.shape[:2]
    flat = y.reshape(n, c, -1)
    kept = (flat != 0).all(axis=2)
    dropped = (flat == 0).all(axis=2)
    assert np.all(kept | dropped), "a plane is partly dropped"
    return kept


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 7), (4, 17, 1, 1), (1, 64, 3, 2)])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_planes_kept_or_zeroed_and_backward_uses_the_same_mask(shape, dtype, p, rng):
    x = (rng.standard_normal(shape) + 5).astype(dtype)  # no zeros
    y = F.dropout2d(x, p, seed=42)
    kept = _plane_mask(y)
    scale = np.asarray(1 / (1 - p), dtype)
    np.testing.assert_array_equal(y, np.where(kept[:, :, None, None], x * scale, 0))
    dy = (rng.standard_normal(shape) + 5).astype(dtype)
    dx = F.dropout2d_backward(dy, p, 42)
    np.testing.assert_array_equal(dx, np.where(kept[:, :, None, None], dy * scale, 0))
    np.testing.assert_array_equal(F.dropout2d(x, p, seed=42), y)  # same seed, same mask


def test_mask_depends_only_on_seed_and_plane_index():
    # the same (seed, n*C + c) keeps or drops the same plane whatever H, W and N are
    a = _plane_mask(F.dropout2d(np.ones((6, 5, 2, 3), np.float32), 0.5, seed=3))
    b = _plane_mask(F.dropout2d(np.ones((3, 10, 7, 1)), 0.5, seed=3))
    np.testing.assert_array_equal(a.reshape(-1), b.reshape(-1))
    c = _plane_mask(F.dropout2d(np.ones((6, 5, 2, 3), np.float32), 0.5, seed=4))
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_drop_rate(p):
    x = np.ones((400, 100, 1, 2), np.float32)  # 40,000 planes
    frac = 1 - _plane_mask(F.dropout2d(x, p, seed=7)).mean()
    assert abs(frac - p) < 0.012  # > 5 standard deviations


def test_layer_train_eval_and_reproducibility(rng):
    x = rng.standard_normal((8, 16, 4, 4)).astype(np.float32) + 3
    layer = nn.Dropout2d(0.5, rng=0)
    y = layer(x)
    kept = _plane_mask(y)
    assert 0.25 < kept.mean() < 0.75
    g = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(_plane_mask(g), kept)
    y2 = layer(x).copy()
    assert not np.array_equal(_plane_mask(y2), kept)  # a fresh mask each forward
    d = nn.Dropout(0.5, rng=0)  # an int rng seeds one generator, not one per forward
    assert not np.array_equal(d(x).copy(), d(x))
    layer.eval()
    assert layer(x) is x and layer.backward(x) is x
    assert repr(layer) == "Dropout2d(p=0.5)"
    neuropil.manual_seed(3)
    a = nn.Dropout2d(0.3)(x).copy()
    neuropil.manual_seed(3)
    np.testing.assert_array_equal(nn.Dropout2d(0.3)(x), a)
    assert nn.Dropout2d(0.0)(x) is x


def test_gradcheck_with_fixed_seed(rng):
    layer = nn.Dropout2d(0.4)
    layer._draw_seed = lambda: 1234  # the same mask for every forward of the check
    gradcheck(layer, rng.standard_normal((3, 4, 2, 3)))


def test_nan(rng):
    x = np.full((4, 8, 2, 2), np.nan, np.float32)
    y = F.dropout2d(x, 0.5, seed=1)
    flat = y.reshape(4, 8, -1)
    kept = np.isnan(flat).all(axis=2)
    assert np.all(kept | (flat == 0).all(axis=2)) and 0 < kept.sum() < 32


def test_bitwise_identical_for_one_and_two_threads(threads):
    x = np.random.default_rng(0).standard_normal((16, 64, 16, 16)).astype(np.float32)
    res = []
    for nt in (1, 2):
        neuropil.set_num_threads(nt)
        res.append((F.dropout2d(x, 0.3, seed=99), F.dropout2d_backward(x, 0.3, 99)))
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


def test_bad_input():
    with pytest.raises(ValueError, match=r"Dropout2d: p must be a probability in \[0, 1\)"):
        nn.Dropout2d(1.0)
    with pytest.raises(ValueError, match=r"dropout2d: p must be a probability"):
        F.dropout2d(np.ones((1, 1, 1, 1)), -0.1)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C, H, W\), got shape "
                                         r"\(2, 3, 4\)"):
        nn.Dropout2d(0.5)(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"x must be 4-D with shape \(N, C, H, W\)"):
        F.dropout2d(np.ones((2, 3), np.float32), 0.5)
    with pytest.raises(TypeError, match=r"must be float32 or float64, got int64"):
        F.dropout2d(np.ones((1, 2, 2, 2), np.int64), 0.5)
    layer = nn.Dropout2d(0.5)
    layer(np.ones((1, 2, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"expected grad_out \(1, 2, 2, 2\)"):
        layer.backward(np.ones((1, 2, 2, 3), np.float32))
    with pytest.raises(RuntimeError, match=r"backward called before forward"):
        nn.Dropout2d(0.5).backward(np.ones((1, 2, 2, 2), np.float32))
