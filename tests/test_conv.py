"""conv2d, im2col/col2im and nn.Conv2d against NumPy references on hostile shapes."""
import numpy as np
import pytest

import neuropil
import neuropil.functional as F
from neuropil import nn

from _conv_reference import (conv2d_backward_ref, conv2d_ref, gradcheck_module, im2col_ref)

# (N, C, H, W, OC, (KH, KW), stride, padding, dilation)
CASES = [
    (1, 1, 5, 5, 1, (1, 1), (1, 1), (0, 0), (1, 1)),     # pointwise fast path, batch 1
    (3, 17, 6, 5, 5, (1, 1), (1, 1), (0, 0), (1, 1)),    # pointwise, many channels
    (2, 3, 7, 6, 4, (3, 2), (2, 1), (1, 1), (1, 2)),     # non-square, mixed stride, dilation
    (3, 2, 8, 9, 3, (2, 2), (3, 3), (0, 0), (1, 1)),     # stride > kernel, even kernel
    (2, 4, 10, 7, 6, (3, 3), (1, 1), (2, 2), (2, 2)),    # padding 2, dilation 2
    (1, 1, 1, 1, 2, (1, 1), (1, 1), (0, 0), (1, 1)),     # tiny image
    (1, 2, 3, 3, 2, (3, 3), (1, 1), (1, 1), (1, 1)),     # tiny, padded
    (2, 3, 6, 5, 7, (4, 4), (2, 2), (2, 1), (1, 1)),     # even kernel, padding
    (1, 1, 2, 2, 1, (5, 5), (1, 1), (2, 2), (1, 1)),     # kernel larger than the image
    (2, 2, 5, 5, 2, (1, 1), (2, 2), (1, 1), (1, 1)),     # 1x1 with stride and padding
    (5, 1, 28, 28, 8, (3, 3), (1, 1), (1, 1), (1, 1)),   # LeNet conv1 (N not a chunk multiple)
    (9, 7, 9, 11, 3, (3, 1), (1, 2), (0, 1), (1, 1)),    # 9 images: several dW chunks
]
IDS = [f"N{c[0]}C{c[1]}H{c[2]}W{c[3]}O{c[4]}k{c[5]}s{c[6]}p{c[7]}d{c[8]}" for c in CASES]
TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}


def make(case, dtype, rng):
    N, C, H, W, OC, k, s, p, d = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((OC, C) + k).astype(dtype)
    b = rng.standard_normal(OC).astype(dtype)
    return x, w, b, s, p, d


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv2d_forward_matches_numpy(case, dtype, rng):
    x, w, b, s, p, d = make(case, dtype, rng)
    y = F.conv2d(x, w, b, stride=s, padding=p, dilation=d)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, conv2d_ref(x, w, b, s, p, d), **TOL[dtype])
    y0 = F.conv2d(x, w, None, stride=s, padding=p, dilation=d)
    np.testing.assert_allclose(y0, conv2d_ref(x, w, None, s, p, d), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv2d_backward_matches_numpy(case, dtype, rng):
    x, w, b, s, p, d = make(case, dtype, rng)
    y = conv2d_ref(x, w, b, s, p, d)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dw, db = F.conv2d_backward(x, w, dy, stride=s, padding=p, dilation=d)
    rdx, rdw, rdb = conv2d_backward_ref(x, w, dy, s, p, d)
    tol = dict(TOL[dtype])
    if dtype == np.float32:  # sums over the whole batch
        tol = dict(rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dx, rdx, **tol)
    np.testing.assert_allclose(dw, rdw, **tol)
    np.testing.assert_allclose(db, rdb, **tol)
    # accumulate=True adds to what is there; missing outputs are skipped
    gw, gb = np.ones_like(w), np.full_like(b, 2)
    r = F.conv2d_backward(x, w, dy, stride=s, padding=p, dilation=d, need_input=False,
                          grad_weight=gw, grad_bias=gb, accumulate=True)
    assert r[0] is None and r[1] is gw and r[2] is gb
    np.testing.assert_allclose(gw, rdw + 1, **tol)
    np.testing.assert_allclose(gb, rdb + 2, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_im2col_and_col2im_adjoint(case, dtype, rng):
    x, w, _, s, p, d = make(case, dtype, rng)
    k = w.shape[2:]
    cols = F.im2col(x, k, s, p, d)
    np.testing.assert_array_equal(cols, im2col_ref(x, k, s, p, d))
    c = rng.standard_normal(cols.shape).astype(dtype)
    back = F.col2im(c, x.shape, k, s, p, d)
    # <im2col(x), c> == <x, col2im(c)>
    lhs = np.dot(cols.ravel().astype(np.float64), c.ravel())
    rhs = np.dot(x.ravel().astype(np.float64), back.ravel())
    assert abs(lhs - rhs) <= 1e-3 * max(1.0, abs(lhs)) if dtype == np.float32 else \
        abs(lhs - rhs) <= 1e-9 * max(1.0, abs(lhs))


def test_nan_output_never_read(rng):
    x, w, b, s, p, d = make(CASES[2], np.float64, rng)
    out = np.full(F.conv2d_output_shape(x.shape, w.shape, s, p, d), np.nan)
    F.conv2d(x, w, b, s, p, d, out=out)
    np.testing.assert_allclose(out, conv2d_ref(x, w, b, s, p, d), rtol=1e-11, atol=1e-11)
    gw, gb = np.full_like(w, np.nan), np.full_like(b, np.nan)
    gx = np.full_like(x, np.nan)
    dy = rng.standard_normal(out.shape)
    F.conv2d_backward(x, w, dy, s, p, d, grad_input=gx, grad_weight=gw, grad_bias=gb)
    assert np.isfinite(gx).all() and np.isfinite(gw).all() and np.isfinite(gb).all()


@pytest.mark.parametrize("isa", ["generic", "avx2"])
def test_conv_thread_count_is_bitwise_irrelevant(isa, rng, threads, isa_path):
    if isa not in neuropil.functional._k.available_isas():
        pytest.skip(f"{isa} kernels not available on this CPU")
    neuropil.set_isa(isa)
    x = rng.standard_normal((11, 5, 12, 10)).astype(np.float32)
    w = rng.standard_normal((16, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    results = []
    for t in (1, 2):
        neuropil.set_num_threads(t)
        y = F.conv2d(x, w, b, padding=1)
        dy = np.cos(y)
        dx, dw, db = F.conv2d_backward(x, w, dy, padding=1)
        y1 = F.conv2d(x[:, :, :, :], w[:, :, :1, :1].copy())  # pointwise path
        results.append((y, dx, dw, db, y1))
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)


# ---------------------------------------------------------------- layer ---
def test_conv2d_layer_init_shapes_and_repr():
    layer = nn.Conv2d(3, 8, 5, padding="same", rng=0)
    assert layer.weight.shape == (8, 3, 5, 5) and layer.bias.shape == (8,)
    assert layer.weight.dtype == np.float32
    bound = 1 / np.sqrt(3 * 25)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.8 * bound  # really uniform over the range
    assert layer.padding == (2, 2)
    y = layer(np.zeros((2, 3, 9, 7), np.float32))
    assert y.shape == (2, 8, 9, 7)
    assert "Conv2d(3, 8, kernel_size=(5, 5)" in repr(layer)
    assert list(nn.Sequential(layer).state_dict()) == ["0.weight", "0.bias"]
    assert nn.Conv2d(2, 3, (3, 1), dilation=2, padding="same").padding == (2, 0)
    assert nn.Conv2d(2, 3, 3, bias=False).bias is None


def test_conv2d_same_seed_same_weights():
    a = nn.Conv2d(3, 4, 3, rng=7).weight.data
    b = nn.Conv2d(3, 4, 3, rng=7).weight.data
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3, stride=1, padding=1),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
    dict(kernel_size=1),
    dict(kernel_size=3, bias=False, stride=3),
])
def test_conv2d_layer_gradcheck(kwargs, rng):
    layer = nn.Conv2d(3, 2, rng=1, **kwargs).double()
    x = rng.standard_normal((2, 3, 6, 5))
    gradcheck_module(layer, x, rng)


def test_conv2d_layer_accumulates_and_skips_input_grad(rng):
    layer = nn.Conv2d(2, 3, 3, rng=0).double()
    x = rng.standard_normal((2, 2, 5, 5))
    dy = rng.standard_normal((2, 3, 3, 3))
    layer.zero_grad()
    layer(x)
    layer.backward(dy)
    g1 = layer.weight.grad.copy()
    layer(x)
    layer.input_grad = False
    assert layer.backward(dy) is None
    np.testing.assert_allclose(layer.weight.grad, 2 * g1, rtol=1e-12)


def test_small_cnn_gradcheck(rng):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=0), nn.MaxPool2d(2),
                          nn.Conv2d(3, 2, 2, rng=1), nn.AvgPool2d(2, stride=1, padding=1)).double()
    x = rng.standard_normal((2, 2, 6, 7))
    gradcheck_module(model, x, rng)


def test_small_cnn_with_dense_layers_gradcheck(rng):
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(3 * 3 * 3, 4, rng=1)).double()
    x = rng.standard_normal((3, 1, 6, 7))
    gradcheck_module(model, x, rng)


# --------------------------------------------------------------- summary ---
def test_summary_three_filters_84_parameters():
    model = nn.Sequential(nn.Conv2d(3, 3, 3, rng=0))
    lines = []
    info = model.summary((3, 6, 6), print_fn=lines.append)
    assert info["total_params"] == 84 == 3 * (27 + 1)
    assert info["layers"][0][2] == ("N", 3, 4, 4)
    assert "84" in lines[0] and "(N, 3, 4, 4)" in lines[0]


def test_summary_of_a_cnn_lists_every_layer():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2),
                          nn.Sequential(nn.Conv2d(4, 8, 3), nn.AvgPool2d(2)))
    model.train()
    info = model.summary((1, 12, 12), print_fn=None)
    assert [r[2] for r in info["layers"]] == [("N", 4, 12, 12), ("N", 4, 6, 6),
                                              ("N", 8, 4, 4), ("N", 8, 2, 2)]
    assert [r[3] for r in info["layers"]] == [40, 0, 296, 0]
    assert info["total_params"] == 336
    assert model.training  # mode restored
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 1, H, W\)"):
        model.summary((3, 12, 12), print_fn=None)


# ------------------------------------------------------------- bad input ---
def test_conv2d_bad_inputs(rng):
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        F.conv2d(x.astype(np.int32), w)
    with pytest.raises(TypeError, match="share one dtype"):
        F.conv2d(x, w.astype(np.float64))
    with pytest.raises(ValueError, match=r"x must be 4-D with shape \(N, C, H, W\)"):
        F.conv2d(x[0], w)
    with pytest.raises(ValueError, match="input channels"):
        F.conv2d(x, w[:, :2].copy())
    with pytest.raises(ValueError, match="output would be empty"):
        F.conv2d(x, rng.standard_normal((4, 3, 7, 7)).astype(np.float32))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        F.conv2d(x, w, padding=-1)
    with pytest.raises(TypeError, match="stride must be an int or a pair"):
        F.conv2d(x, w, stride=1.5)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        F.conv2d(x, w, np.zeros(3, np.float32))
    out = np.zeros((2, 4, 3, 3), np.float32)
    out.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        F.conv2d(x, w, out=out)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 4, 3, 3\)"):
        F.conv2d(x, w, out=np.zeros((2, 4, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 4, 3, 3\)"):
        F.conv2d_backward(x, w, np.zeros((2, 4, 3, 2), np.float32))
    with pytest.raises(ValueError, match="absurd"):
        F.conv2d(x, w, padding=2**40)
    with pytest.raises(ValueError, match="absurd"):
        F.conv2d(np.zeros((2**20, 1, 1, 1), np.float32), np.zeros((2**20, 1, 1, 1), np.float32))
    # non-contiguous input is copied, not rejected
    xt = np.asfortranarray(x)
    np.testing.assert_allclose(F.conv2d(xt, w), F.conv2d(x, w), rtol=1e-6)
    # NaN propagates
    xn = x.copy()
    xn[0, 0, 2, 2] = np.nan
    assert np.isnan(F.conv2d(xn, w)[0]).any() and np.isfinite(F.conv2d(xn, w)[1]).all()


def test_conv2d_layer_bad_inputs():
    layer = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 4.*expected input of shape \(N, 3, H, W\)"):
        layer(np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\), got \(3, 8, 8\)"):
        layer(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(TypeError, match="float64 but the layer is float32"):
        layer(np.zeros((1, 3, 8, 8)))
    with pytest.raises(ValueError, match="too small"):
        layer(np.zeros((1, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match="empty batch"):
        layer(np.zeros((0, 3, 8, 8), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Conv2d(1, 1, 1).backward(np.zeros((1, 1, 1, 1), np.float32))
    with pytest.raises(ValueError, match="odd kernel"):
        nn.Conv2d(3, 4, 2, padding="same")
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        nn.Conv2d(0, 4, 3)
    with pytest.raises(ValueError, match="padding must be"):
        nn.Conv2d(3, 4, 3, padding="full")
    layer(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 4, 6, 6\)"):
        layer.backward(np.zeros((2, 4, 6, 5), np.float32))


def test_cnn_training_is_bitwise_identical_for_1_and_2_threads(threads):
    from neuropil import optim
    data = np.random.default_rng(3)
    x = data.standard_normal((10, 2, 12, 12)).astype(np.float32)
    y = data.integers(0, 5, 10)
    weights = []
    for t in (1, 2):
        neuropil.set_num_threads(t)
        model = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(8, 16, 3, rng=1), nn.ReLU(), nn.AvgPool2d(2),
                              nn.Flatten(), nn.Linear(64, 5, rng=2))
        loss_fn = nn.CrossEntropyLoss()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            opt.zero_grad()
            loss_fn.forward(model(x), y)
            model.backward(loss_fn.backward())
            opt.step()
        weights.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_summary_with_dense_head():
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
    info = model.summary((1, 28, 28), print_fn=None)
    assert info["layers"][6][2] == ("N", 3136)
    assert info["layers"][-1][2] == ("N", 10)
    assert info["total_params"] == 320 + 18496 + 401536 + 1290 == model.num_parameters()
