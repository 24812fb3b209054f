"""interpolate / nn.Upsample against a NumPy reference built from PyTorch's index rules
(and PyTorch itself when installed): forward, backward (the adjoint), determinism,
bad input."""
import math

import numpy as np
import pytest

import neuropil
import neuropil.functional as F
from neuropil import nn
from neuropil.testing import gradcheck

DTYPES = [np.float32, np.float64]


def _axis_matrix(n_in, n_out, scale, mode, align_corners, dtype):
    """A[out, in]: the interpolation weights of one axis (PyTorch's rules, written anew).

    ``scale`` is the scale factor given to interpolate (None: the ratio of sizes)."""
    a = np.zeros((n_out, n_in))
    if mode == "nearest":
        f32 = np.float32
        for d in range(n_out):
            if n_out == n_in:
                s = d
            elif n_out == 2 * n_in:
                s = d // 2
            else:
                r = f32(1.0 / scale) if scale is not None else f32(n_in) / f32(n_out)
                s = min(int(np.floor(f32(d) * r)), n_in - 1)
            a[d, s] += 1
        return a
    t = np.dtype(dtype).type
    if align_corners:
        r = t(n_in - 1) / t(n_out - 1) if n_out > 1 else t(0)
    else:
        r = t(1.0 / scale) if scale is not None else t(n_in) / t(n_out)
    for d in range(n_out):
        if n_out == n_in:
            a[d, d] = 1
            continue
        src = r * t(d) if align_corners else max(r * (t(d) + t(0.5)) - t(0.5), t(0))
        i0 = min(int(np.floor(src)), n_in - 1)
        lam = min(max(src - t(i0), t(0)), t(1))
        i1 = i0 + (1 if i0 < n_in - 1 else 0)
        a[d, i0] += 1 - float(lam)
        a[d, i1] += float(lam)
    return a


def _plan(shape, size, scale_factor, recompute):
    spatial = shape[2:]
    dim = len(spatial)
    if size is not None:
        out = tuple(size) if isinstance(size, tuple) else (size,) * dim
        scales = (None,) * dim
    else:
        sf = tuple(scale_factor) if isinstance(scale_factor, tuple) else (scale_factor,) * dim
        out = tuple(math.floor(i * s) for i, s in zip(spatial, sf))
        scales = (None,) * dim if recompute else sf
    return out, scales


def interp_matrices(shape, size=None, scale_factor=None, mode="nearest", align_corners=False,
                    recompute=False, dtype=np.float64):
    out, scales = _plan(shape, size, scale_factor, recompute)
    return [_axis_matrix(i, o, s, mode, align_corners, dtype)
            for i, o, s in zip(shape[2:], out, scales)]


def interp_ref(x, mats):
    x = x.astype(np.float64)
    if len(mats) == 1:
        return np.einsum("ol,ncl->nco", mats[0], x)
    return np.einsum("oh,nchw,pw->ncop", mats[0], x, mats[1])


def interp_backward_ref(dy, mats):
    dy = dy.astype(np.float64)
    if len(mats) == 1:
        return np.einsum("ol,nco->ncl", mats[0], dy)
    return np.einsum("oh,ncop,pw->nchw", mats[0], dy, mats[1])


# (input shape, size, scale_factor, recompute_scale_factor)
CASES = [
    ((1, 1, 1, 1), None, 2, None),
    ((2, 3, 5, 7), None, 2, None),               # out = 2 in: the shift rule
    ((1, 2, 4, 6), None, 3, None),
    ((2, 1, 5, 7), None, 1.5, None),             # non-integer factors
    ((1, 3, 7, 5), None, (2.3, 1.7), None),
    ((1, 2, 9, 8), None, 0.5, None),             # downsampling
    ((2, 2, 10, 7), None, (0.7, 0.45), None),
    ((1, 1, 5, 5), None, 2.1, None),             # out = 2 in from a factor != 2
    ((1, 2, 6, 5), None, 1.3, True),             # recompute_scale_factor
    ((1, 17, 4, 4), (7, 3), None, None),         # explicit sizes, C = 17
    ((3, 2, 5, 7), (5, 7), None, None),          # same size: a copy
    ((1, 1, 6, 9), (1, 1), None, None),          # down to 1x1
    ((2, 1, 1, 1), (4, 5), None, None),          # from 1x1
    ((1, 2, 3, 1), (9, 4), None, None),
    ((2, 3, 11), None, 1.6, None),               # 3-D (N, C, L)
    ((1, 2, 8), 3, None, None),
    ((1, 1, 4), None, 2, None),
]
IDS = [f"{'x'.join(map(str, c[0]))}-{'size' if c[1] else 'sf'}{c[1] or c[2]}"
       + ("-rc" if c[3] else "") for c in CASES]
MODES = [("nearest", None), ("linear", False), ("linear", True)]


def _mode(shape, mode):
    return "bilinear" if mode == "linear" and len(shape) == 4 else mode


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode,align_corners", MODES, ids=["nearest", "ac0", "ac1"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_and_backward_match_numpy(case, mode, align_corners, dtype, rng):
    shape, size, sf, rc = case
    mode = _mode(shape, mode)
    kw = dict(size=size, scale_factor=sf, mode=mode, align_corners=align_corners,
              recompute_scale_factor=rc)
    x = rng.standard_normal(shape).astype(dtype)
    y = F.interpolate(x, **kw)
    mats = interp_matrices(shape, size, sf, mode, bool(align_corners), bool(rc), dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    assert y.dtype == dtype and y.shape == shape[:2] + tuple(m.shape[0] for m in mats)
    if mode == "nearest":
        np.testing.assert_array_equal(y, interp_ref(x, mats).astype(dtype))
    else:
        np.testing.assert_allclose(y, interp_ref(x, mats), **tol)
    assert F.interpolate_output_shape(shape, **kw) == y.shape
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = F.interpolate_backward(dy, shape, **kw)
    assert dx.shape == shape and dx.dtype == dtype
    np.testing.assert_allclose(dx, interp_backward_ref(dy, mats), **tol)
    # the adjoint identity <interp(x), dy> == <x, interp_backward(dy)>
    np.testing.assert_allclose(np.vdot(y.astype(np.float64), dy),
                               np.vdot(x.astype(np.float64), dx),
                               rtol=1e-4 if dtype == np.float32 else 1e-11, atol=1e-8)


@pytest.mark.parametrize("mode,align_corners", [("nearest", None), ("bilinear", False),
                                                ("bilinear", True)])
@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(scale_factor=1.5),
                                dict(size=(3, 5)), dict(scale_factor=(0.6, 2.5))])
def test_layer_gradcheck(kw, mode, align_corners, rng):
    layer = nn.Upsample(mode=mode, align_corners=align_corners, **kw)
    gradcheck(layer, rng.standard_normal((2, 2, 4, 3)), max_checks=None)


def test_linear_1d_gradcheck(rng):
    gradcheck(nn.Upsample(scale_factor=1.7, mode="linear"), rng.standard_normal((2, 3, 5)))
    gradcheck(nn.Upsample(size=4, mode="nearest"), rng.standard_normal((1, 2, 7)))


def test_layer_buffers_repr_and_legacy_names(rng):
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    up = nn.Upsample(scale_factor=2)
    y = up(x)
    assert up(x) is y  # training: the output buffer is reused
    g = up.backward(np.ones_like(y))
    np.testing.assert_array_equal(g, 4.0)  # each pixel read by four outputs
    assert repr(up) == "Upsample(scale_factor=2.0, mode='nearest')"
    assert repr(nn.Upsample(size=(4, 5), mode="bilinear", align_corners=True)) == (
        "Upsample(size=(4, 5), mode='bilinear', align_corners=True)")
    np.testing.assert_array_equal(nn.UpsamplingNearest2d(scale_factor=2)(x), y)
    np.testing.assert_array_equal(
        nn.UpsamplingBilinear2d(size=(5, 4))(x),
        F.interpolate(x, size=(5, 4), mode="bilinear", align_corners=True))
    up.scale_factor = 3.0  # the cached plan follows the attributes
    assert up(x).shape == (1, 2, 9, 9)
    up.scale_factor = 2.0
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 6, 6\)"):
        up(x)
        up.backward(np.ones((1, 2, 9, 9), np.float32))
    up.eval()
    assert up(x) is not up(x)
    assert up.state_dict() == {} and up.parameters() == []


def test_nearest_2x_is_pixel_repeat_and_nan_passes(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    x[0, 1, 2, 3] = np.nan
    y = F.interpolate(x, scale_factor=2)
    np.testing.assert_array_equal(y, x.repeat(2, axis=2).repeat(2, axis=3))
    yb = F.interpolate(x, scale_factor=2, mode="bilinear")
    assert np.isnan(yb[0, 1]).any() and np.isfinite(yb[0, 0]).all() and np.isfinite(yb[1]).all()
    dx = F.interpolate_backward(np.full(y.shape, np.nan, np.float32), x.shape, scale_factor=2)
    assert np.isnan(dx).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode,kw", [("nearest", dict(scale_factor=2)),
                                     ("nearest", dict(scale_factor=1.7)),
                                     ("bilinear", dict(scale_factor=2)),
                                     ("bilinear", dict(size=(37, 23), align_corners=True))])
def test_bitwise_identical_for_one_and_two_threads(mode, kw, dtype, rng, threads):
    x = rng.standard_normal((4, 8, 33, 29)).astype(dtype)
    res = []
    for nt in (1, 2):
        neuropil.set_num_threads(nt)
        y = F.interpolate(x, mode=mode, **kw)
        dx = F.interpolate_backward(np.cos(y), x.shape, mode=mode, **kw)
        res.append((y, dx))
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


def test_bad_input():
    x = np.zeros((1, 2, 4, 4), np.float32)
    for kwargs, err, msg in [
        (dict(), ValueError, r"either size or scale_factor must be given"),
        (dict(size=3, scale_factor=2), ValueError, r"only one of size or scale_factor"),
        (dict(scale_factor=0.1), ValueError, r"sizes must be greater than 0, got input \(4, 4\) "
                                             r"and output \(0, 0\)"),
        (dict(scale_factor=-2), ValueError, r"scale_factor must be positive and finite"),
        (dict(scale_factor=float("nan")), ValueError, r"scale_factor must be positive"),
        (dict(scale_factor="2"), TypeError, r"scale_factor must be a number"),
        (dict(size=(3, 4, 5)), ValueError, r"size must have 2 entries"),
        (dict(size=2.5), TypeError, r"size must be an int"),
        (dict(size=0), ValueError, r"sizes must be greater than 0"),
        (dict(size=3, recompute_scale_factor=True), ValueError, r"not meaningful"),
        (dict(size=3, mode="bicubic"), ValueError, r"mode must be 'nearest', 'linear'"),
        (dict(size=3, mode="linear"), ValueError, r"mode 'linear' needs 3-D input \(N, C, L\), "
                                                  r"got 4-D"),
        (dict(size=3, align_corners=True), ValueError, r"align_corners can only be set"),
        (dict(size=3, mode="bilinear", align_corners=1), TypeError, r"align_corners must be"),
    ]:
        with pytest.raises(err, match=msg):
            F.interpolate(x, **kwargs)
    with pytest.raises(ValueError, match=r"mode 'bilinear' needs 4-D input"):
        F.interpolate(np.zeros((1, 2, 4), np.float32), size=3, mode="bilinear")
    with pytest.raises(ValueError, match=r"input must be 3-D \(N, C, L\) or 4-D"):
        F.interpolate(np.zeros((2, 4), np.float32), size=3)
    with pytest.raises(TypeError, match=r"input must be float32 or float64, got int64"):
        F.interpolate(np.zeros((1, 2, 4, 4), np.int64), size=3)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 8, 8\)"):
        F.interpolate_backward(np.zeros((1, 2, 8, 7), np.float32), x.shape, scale_factor=2)
    with pytest.raises(ValueError, match=r"out must be C-contiguous"):
        F.interpolate(np.zeros((1, 2, 4), np.float32), size=6,
                      out=np.zeros((1, 2, 12), np.float32)[:, :, ::2])
    with pytest.raises(ValueError, match=r"out is read-only"):
        out = np.zeros((1, 2, 8, 8), np.float32)
        out.flags.writeable = False
        F.interpolate(x, scale_factor=2, out=out)
    with pytest.raises(TypeError, match=r"out must be float32 like x, got float64"):
        F.interpolate(x, scale_factor=2, out=np.zeros((1, 2, 8, 8)))
    with pytest.raises(ValueError, match=r"give exactly one of size and scale_factor"):
        nn.Upsample()
    with pytest.raises(ValueError, match=r"align_corners can only be set"):
        nn.Upsample(scale_factor=2, align_corners=False)
    with pytest.raises(ValueError, match=r"mode must be"):
        nn.Upsample(scale_factor=2, mode="area")
    up = nn.Upsample(scale_factor=2)
    with pytest.raises(RuntimeError, match=r"backward called before forward"):
        up.backward(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"expected \(N, C, L\) or \(N, C, H, W\) input"):
        up(np.zeros((1, 2, 3, 4, 5), np.float32))
    with pytest.raises(TypeError, match=r"input must be float32 or float64"):
        up(np.zeros((1, 2, 3, 4), np.int32))
    with pytest.raises(ValueError, match=r"empty batch"):
        up(np.zeros((0, 2, 3, 4), np.float32))


# --- PyTorch cross-checks (skipped when torch is not installed) ---------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode,align_corners", MODES, ids=["nearest", "ac0", "ac1"])
@pytest.mark.parametrize("case", CASES + [((1, 1, 5, 3), (3, 5), None, None),
                                          ((1, 1, 7, 6), None, (1 / 3, 0.9), None),
                                          ((1, 1, 13, 9), (5, 3), None, None)],
                         ids=IDS + ["5x3to3x5", "third", "13x9to5x3"])
def test_matches_torch(case, mode, align_corners, dtype, rng):
    torch = pytest.importorskip("torch")
    shape, size, sf, rc = case
    mode = _mode(shape, mode)
    kw = dict(size=size, scale_factor=sf, mode=mode, align_corners=align_corners,
              recompute_scale_factor=rc)
    x = rng.standard_normal(shape).astype(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = torch.nn.functional.interpolate(tx, **kw)
    y = F.interpolate(x, **kw)
    assert y.shape == tuple(ty.shape)
    dy = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.from_numpy(dy))
    dx = F.interpolate_backward(dy, shape, **kw)
    if mode == "nearest":
        np.testing.assert_array_equal(y, ty.detach().numpy())
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tol)


@pytest.mark.parametrize("kw", [dict(size=(5, 3)), dict(scale_factor=2), dict(size=(9, 11))])
def test_nan_in_grad_out_reaches_only_the_pixels_it_came_from(kw, rng):
    x_shape = (1, 1, 7, 6)
    y_shape = F.interpolate_output_shape(x_shape, **kw)
    dy = rng.standard_normal(y_shape)
    dy[0, 0, 1, 2] = np.nan
    dx = F.interpolate_backward(dy, x_shape, **kw)
    mats = interp_matrices(x_shape, kw.get("size"), kw.get("scale_factor"), "nearest")
    want = np.outer(mats[0][1] != 0, mats[1][2] != 0)  # the one pixel output (1, 2) read
    np.testing.assert_array_equal(np.isnan(dx[0, 0]), want)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("kw", [dict(size=(5, 3)), dict(scale_factor=2), dict(size=(9, 11))])
def test_nan_pattern_matches_torch(kw, align_corners, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((1, 1, 7, 6))
    x[0, 0, 3, 2] = np.nan
    y = F.interpolate(x, mode="bilinear", align_corners=align_corners, **kw)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = torch.nn.functional.interpolate(tx, mode="bilinear", align_corners=align_corners, **kw)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ty.detach().numpy()))
    dy = rng.standard_normal(y.shape)
    dy[0, 0, 1, 2] = np.nan
    ty.backward(torch.from_numpy(dy))
    dx = F.interpolate_backward(dy, x.shape, mode="bilinear", align_corners=align_corners, **kw)
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(tx.grad.numpy()))


def test_strided_and_read_only_inputs(rng):
    base = rng.standard_normal((2, 3, 8, 10)).astype(np.float32)
    x = base[:, :, ::2, 1::2]
    x.flags.writeable = False
    for mode in ("nearest", "bilinear"):
        up = nn.Upsample(scale_factor=1.5, mode=mode)
        np.testing.assert_array_equal(up(x), F.interpolate(np.ascontiguousarray(x),
                                                           scale_factor=1.5, mode=mode))
        dy = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
        np.testing.assert_array_equal(up.backward(np.asfortranarray(dy)),
                                      F.interpolate_backward(dy, x.shape, scale_factor=1.5,
                                                             mode=mode))
