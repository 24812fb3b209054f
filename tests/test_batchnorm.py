"""BatchNorm1d/2d and functional.batch_norm against NumPy references (and PyTorch when
installed): forward, backward, running statistics, train/eval, determinism, bad input."""
import numpy as np
import pytest

import neuropil
import neuropil.functional as F
from neuropil import nn
from neuropil.testing import gradcheck

DTYPES = [np.float32, np.float64]

# Shapes chosen to hit every reduction path of the kernel: short rows (L < 64: blocks of
# channels, several row chunks and channel blocks, a partial last block; L = 1 is (N, C)),
# long rows (L >= 64, one channel per unit), rows longer than one chunk (L > 4096, split
# into pieces), batch 1, C = 1, C = 17, 1x1 spatial.
SHAPES = [
    (2, 1), (7, 17), (300, 70),                   # (N, C)
    (2, 17, 7), (40, 50, 30), (1, 3, 65), (3, 2, 5000),  # (N, C, L)
    (1, 1, 1, 2), (2, 17, 1, 1), (5, 3, 7, 9),     # (N, C, H, W)
    (2, 4, 8, 8), (1, 2, 70, 70), (130, 3, 2, 2),
]
IDS = ["x".join(map(str, s)) for s in SHAPES]


def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _bshape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def bn_ref(x, rm, rv, w, b, training, momentum, eps):
    """float64 reference of PyTorch's batch_norm: (y, mean, var, new_rm, new_rv)."""
    x = x.astype(np.float64)
    if training:
        mean, var = x.mean(_axes(x)), x.var(_axes(x))
        m = x.size / x.shape[1]
        new_rm = None if rm is None else (1 - momentum) * rm + momentum * mean
        new_rv = None if rv is None else (1 - momentum) * rv + momentum * var * m / (m - 1)
    else:
        mean, var = rm.astype(np.float64), rv.astype(np.float64)
        new_rm, new_rv = rm, rv
    s = _bshape(x)
    y = (x - mean.reshape(s)) / np.sqrt(var.reshape(s) + eps)
    if w is not None:
        y = y * w.reshape(s) + b.reshape(s)
    return y, mean, var, new_rm, new_rv


def bn_backward_ref(x, dy, w, mean, invstd, training):
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    s = _bshape(x)
    m = x.size / x.shape[1]
    xhat = (x - mean.reshape(s)) * invstd.reshape(s)
    dgamma = (dy * xhat).sum(_axes(x))
    dbeta = dy.sum(_axes(x))
    g = (np.ones(x.shape[1]) if w is None else w.astype(np.float64)).reshape(s)
    if training:
        dx = g * invstd.reshape(s) / m * (m * dy - dbeta.reshape(s) - xhat * dgamma.reshape(s))
    else:
        dx = g * invstd.reshape(s) * dy
    return dx, dgamma, dbeta


def _tol(dtype, scale=1.0):
    return (dict(rtol=2e-4, atol=2e-5 * scale) if dtype == np.float32
            else dict(rtol=1e-10, atol=1e-11 * scale))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_forward_training_matches_numpy(shape, dtype, rng):
    x = (rng.standard_normal(shape) * 2 + 100).astype(dtype)  # a large mean: no cancellation
    c = shape[1]
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    ry, rmean, rvar, rrm, rrv = bn_ref(x, rm.copy(), rv.copy(), w, b, True, 0.1, 1e-5)
    y, mean, invstd = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5,
                                   return_stats=True)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y, ry, **_tol(dtype, 10))
    np.testing.assert_allclose(mean, rmean, **_tol(dtype, 100))
    np.testing.assert_allclose(invstd, 1 / np.sqrt(rvar + 1e-5), **_tol(dtype, 10))
    np.testing.assert_allclose(rm, rrm, **_tol(dtype, 10))   # updated in place
    np.testing.assert_allclose(rv, rrv, **_tol(dtype, 10))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_forward_eval_matches_numpy(shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    y = F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-3)
    np.testing.assert_allclose(y, bn_ref(x, rm, rv, w, b, False, 0.1, 1e-3)[0], **_tol(dtype))
    np.testing.assert_array_equal(rm, rm0)  # eval never writes the running statistics
    np.testing.assert_array_equal(rv, rv0)
    # affine=False: weight 1, bias 0
    y = F.batch_norm(x, rm, rv, training=False, eps=1e-3)
    np.testing.assert_allclose(y, bn_ref(x, rm, rv, None, None, False, 0.1, 1e-3)[0],
                               **_tol(dtype))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_backward_matches_numpy(shape, dtype, training, rng):
    x = (rng.standard_normal(shape) + 3).astype(dtype)
    c = shape[1]
    w = rng.standard_normal(c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    _, mean, invstd = F.batch_norm(x, rm, rv, w, b, training=training, return_stats=True)
    dy = rng.standard_normal(shape).astype(dtype)
    dy_before = dy.copy()
    dx, dw, db = F.batch_norm_backward(dy, x, mean, invstd, w, training=training)
    rdx, rdw, rdb = bn_backward_ref(x, dy, w, mean.astype(np.float64),
                                    invstd.astype(np.float64), training)
    m = x.size / c
    np.testing.assert_allclose(dx, rdx, **_tol(dtype))
    np.testing.assert_allclose(dw, rdw, **_tol(dtype, np.sqrt(m)))
    np.testing.assert_allclose(db, rdb, **_tol(dtype, np.sqrt(m)))
    np.testing.assert_array_equal(dy, dy_before)  # grad_out is never modified
    # accumulate adds; each output may be skipped
    dw2, db2 = dw.copy(), db.copy()
    gi, gw, gb = F.batch_norm_backward(dy, x, mean, invstd, w, training=training,
                                       need_input=False, grad_weight=dw2, grad_bias=db2,
                                       accumulate=True)
    assert gi is None and gw is dw2 and gb is db2
    np.testing.assert_allclose(dw2, 2 * dw, rtol=1e-6)
    np.testing.assert_allclose(db2, 2 * db, rtol=1e-6)
    gi, gw, gb = F.batch_norm_backward(dy, x, mean, invstd, w, training=training,
                                       need_weight=False, need_bias=False)
    assert gw is None and gb is None
    np.testing.assert_array_equal(gi, dx)


def test_backward_overwrites_nan_filled_outputs(rng):
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    _, mean, invstd = F.batch_norm(x, None, None, training=True, return_stats=True)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    ref = F.batch_norm_backward(dy, x, mean, invstd)
    outs = [np.full(x.shape, np.nan, np.float32), np.full(3, np.nan, np.float32),
            np.full(3, np.nan, np.float32)]
    got = F.batch_norm_backward(dy, x, mean, invstd, grad_input=outs[0], grad_weight=outs[1],
                                grad_bias=outs[2])
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("layer_cls,shape", [(nn.BatchNorm1d, (6, 5)),
                                             (nn.BatchNorm1d, (3, 5, 4)),
                                             (nn.BatchNorm2d, (2, 5, 3, 3))])
def test_running_statistics_follow_pytorch_formula(layer_cls, shape, momentum, rng):
    layer = layer_cls(5, momentum=momentum).double()
    rm, rv = np.zeros(5), np.ones(5)
    for step in range(1, 6):
        x = rng.standard_normal(shape) * step + step
        y = layer(x)
        factor = 1.0 / step if momentum is None else momentum
        ry, _, _, rm, rv = bn_ref(x, rm, rv, layer.weight.data, layer.bias.data, True, factor,
                                  1e-5)
        np.testing.assert_allclose(y, ry, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-12)
        np.testing.assert_allclose(layer.running_var, rv, rtol=1e-12)
        assert layer.num_batches_tracked.dtype == np.int64 and layer.num_batches_tracked == step
    layer.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(layer(x), bn_ref(x, rm, rv, layer.weight.data, layer.bias.data,
                                                False, 0, 1e-5)[0], rtol=1e-10, atol=1e-12)
    assert layer.num_batches_tracked == 5  # eval changes nothing
    np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-12)


def test_no_running_statistics_uses_batch_statistics_in_eval(rng):
    layer = nn.BatchNorm2d(3, track_running_stats=False, affine=False)
    assert layer.running_mean is None and layer.num_batches_tracked is None
    assert list(layer.state_dict()) == [] and layer.parameters() == []
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32) * 3 + 1
    layer.eval()
    y = layer(x)
    np.testing.assert_allclose(y, bn_ref(x, None, None, None, None, True, 0, 1e-5)[0],
                               rtol=1e-4, atol=1e-5)
    # its backward goes through the batch statistics
    g = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(g, 0, atol=1e-5)  # d/dx sum(xhat) = 0


def test_state_dict_keys_buffers_and_dtype_conversion(rng):
    layer = nn.BatchNorm2d(4)
    assert list(layer.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                        "num_batches_tracked"]
    np.testing.assert_array_equal(layer.weight.data, np.ones(4, np.float32))
    np.testing.assert_array_equal(layer.bias.data, np.zeros(4, np.float32))
    np.testing.assert_array_equal(layer.running_var, np.ones(4, np.float32))
    assert layer.num_batches_tracked.shape == ()
    layer(rng.standard_normal((3, 4, 2, 2)).astype(np.float32))
    layer.double()
    assert layer.running_mean.dtype == np.float64 and layer.weight.dtype == np.float64
    assert layer.num_batches_tracked.dtype == np.int64 and layer.num_batches_tracked == 1
    other = nn.BatchNorm2d(4).double()
    other.load_state_dict(layer.state_dict())
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k], v)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    assert "1.num_batches_tracked" in model.state_dict()
    assert repr(nn.BatchNorm1d(3, momentum=None, affine=False)) == (
        "BatchNorm1d(3, eps=1e-05, momentum=None, affine=False, track_running_stats=True)")


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("layer,shape", [
    (lambda: nn.BatchNorm1d(3), (5, 3)),
    (lambda: nn.BatchNorm1d(2), (3, 2, 4)),
    (lambda: nn.BatchNorm2d(3), (2, 3, 3, 2)),
    (lambda: nn.BatchNorm2d(1), (1, 1, 2, 3)),
    (lambda: nn.BatchNorm2d(2, affine=False), (3, 2, 2, 2)),
    (lambda: nn.BatchNorm2d(2, track_running_stats=False), (3, 2, 2, 2)),
])
def test_gradcheck(layer, shape, train, rng):
    layer = layer().double()
    if layer.affine:  # non-trivial weight and bias
        layer.weight.data[:] = rng.uniform(0.5, 2, layer.num_features)
        layer.bias.data[:] = rng.standard_normal(layer.num_features)
    if layer.track_running_stats:
        layer.running_mean[:] = rng.standard_normal(layer.num_features)
        layer.running_var[:] = rng.uniform(0.5, 2, layer.num_features)
    layer.train(train)
    x = rng.standard_normal(shape) * 2 + 1
    gradcheck(layer, x, rtol=1e-5)


def test_requires_grad_and_backward_params(rng):
    layer = nn.BatchNorm2d(3).double()
    layer.weight.data[:] = [0.5, 1.5, 2.0]
    x = rng.standard_normal((2, 3, 4, 4))
    dy = rng.standard_normal(x.shape)
    layer.zero_grad()
    layer(x)
    dx = layer.backward(dy).copy()
    gw, gb = layer.weight.grad.copy(), layer.bias.grad.copy()
    layer.zero_grad()
    layer(x)
    assert layer.backward_params(dy) is None
    np.testing.assert_array_equal(layer.weight.grad, gw)
    np.testing.assert_array_equal(layer.bias.grad, gb)
    layer.backward_params(dy)  # accumulates
    np.testing.assert_allclose(layer.weight.grad, 2 * gw)
    layer.weight.requires_grad = False
    layer.zero_grad()
    layer.weight.grad[:] = 7.0
    layer(x)
    np.testing.assert_array_equal(layer.backward(dy), dx)
    np.testing.assert_array_equal(layer.weight.grad, 7.0)  # untouched
    np.testing.assert_array_equal(layer.bias.grad, gb)


def test_grad_out_is_not_modified_and_training_buffers_are_reused(rng):
    layer = nn.BatchNorm1d(4)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    y1 = layer(x)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    keep = dy.copy()
    g1 = layer.backward(dy)
    np.testing.assert_array_equal(dy, keep)
    assert layer(x) is y1 and layer.backward(dy) is g1
    layer.eval()
    assert layer(x) is not layer(x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2000, 70), (512, 33, 9), (16, 8, 40, 40), (2, 3, 150, 150),
                                   (7000, 5, 3)])  # large enough to run on 2 threads
def test_bitwise_identical_for_one_and_two_threads(shape, dtype, rng, threads):
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    w = rng.standard_normal(c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    results = []
    for nt in (1, 2):
        neuropil.set_num_threads(nt)
        rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
        y, mean, invstd = F.batch_norm(x, rm, rv, w, b, training=True, return_stats=True)
        grads = F.batch_norm_backward(dy, x, mean, invstd, w, training=True)
        results.append([y, mean, invstd, rm, rv, *grads])
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)


def test_nan_stays_in_its_channel():
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32)
    x[1, 0, 2, 2] = np.nan
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y = F.batch_norm(x, rm, rv, training=True)
    assert np.isnan(y[:, 0]).all() and np.isfinite(y[:, 1:]).all()
    assert np.isnan(rm[0]) and np.isfinite(rm[1:]).all()
    y = F.batch_norm(x, np.zeros(3, np.float32), np.ones(3, np.float32), training=False)
    assert np.isnan(y).sum() == 1 and np.isnan(y[1, 0, 2, 2])


def test_bad_input():
    f32 = np.float32
    layer = nn.BatchNorm2d(16)
    with pytest.raises(ValueError, match=r"expected 16 channels .* got 3 in input of shape "
                                         r"\(2, 3, 4, 4\)"):
        layer(np.zeros((2, 3, 4, 4), f32))
    with pytest.raises(ValueError, match=r"expected \(N, 16, H, W\) input, got 3-D input"):
        layer(np.zeros((2, 16, 4), f32))
    with pytest.raises(ValueError, match=r"BatchNorm1d.*expected \(N, 5\) or \(N, 5, L\) input, "
                                         r"got 4-D"):
        nn.BatchNorm1d(5)(np.zeros((2, 5, 1, 1), f32))
    with pytest.raises(TypeError, match=r"input is float64 but the layer is float32"):
        layer(np.zeros((2, 16, 4, 4)))
    with pytest.raises(TypeError, match=r"input is int64"):
        layer(np.zeros((2, 16, 4, 4), np.int64))
    with pytest.raises(ValueError, match=r"more than 1 value per channel"):
        nn.BatchNorm1d(5)(np.zeros((1, 5), f32))
    with pytest.raises(ValueError, match=r"more than 1 value per channel"):
        layer(np.zeros((1, 16, 1, 1), f32))
    assert layer.num_batches_tracked == 0  # a refused call counts nothing
    layer.eval()
    assert layer(np.zeros((1, 16, 1, 1), f32)).shape == (1, 16, 1, 1)  # eval: fine
    with pytest.raises(ValueError, match=r"empty batch"):
        layer(np.zeros((0, 16, 2, 2), f32))
    with pytest.raises(RuntimeError, match=r"backward called before forward"):
        nn.BatchNorm2d(2).backward(np.zeros((1, 2, 1, 1), f32))
    layer.train()
    layer(np.ones((2, 16, 2, 2), f32))
    with pytest.raises(ValueError, match=r"grad_out must have the shape of the input"):
        layer.backward(np.zeros((2, 16, 2, 3), f32))
    for kwargs, err, msg in [
        (dict(num_features=0), ValueError, "num_features must be a positive int"),
        (dict(num_features=3.0), ValueError, "num_features must be a positive int"),
        (dict(num_features=3, eps=-1), ValueError, "eps must be a finite number >= 0"),
        (dict(num_features=3, momentum="x"), ValueError, "momentum must be a finite number"),
        (dict(num_features=3, affine=1), TypeError, "affine must be a bool"),
        (dict(num_features=3, dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    ]:
        with pytest.raises(err, match=msg):
            nn.BatchNorm2d(**kwargs)
    # functional and binding level
    x = np.zeros((2, 3, 4), f32)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\) for the 3 "
                                         r"channels of x \(2, 3, 4\), got \(4,\)"):
        F.batch_norm(x, np.zeros(4, f32), np.ones(4, f32))
    with pytest.raises(ValueError, match=r"running_mean and running_var must be given"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(TypeError, match=r"batch_norm: x must be float32 or float64, got int32"):
        F.batch_norm(x.astype(np.int32), None, None, training=True)
    with pytest.raises(ValueError, match=r"batch_norm: x must have shape \(N, C\)"):
        F.batch_norm(np.zeros(3, f32), None, None, training=True)
    with pytest.raises(TypeError, match=r"running_var is float64"):
        F.batch_norm(x, np.zeros(3, f32), np.ones(3), training=True)
    with pytest.raises(ValueError, match=r"running_var is read-only"):
        rv = np.ones(3, f32)
        rv.flags.writeable = False
        F.batch_norm(x, np.zeros(3, f32), rv, training=True)
    with pytest.raises(ValueError, match=r"out overlaps x"):
        F.batch_norm(x, None, None, training=True, out=x)
    with pytest.raises(ValueError, match=r"grad_out must have the shape of x"):
        F.batch_norm_backward(np.zeros((2, 3, 5), f32), x, np.zeros(3, f32), np.ones(3, f32))
    with pytest.raises(ValueError, match=r"grad_input overlaps grad_out"):
        dy = np.zeros_like(x)
        F.batch_norm_backward(dy, x, np.zeros(3, f32), np.ones(3, f32), grad_input=dy)


def test_model_with_batchnorm_trains_and_summarises(rng):
    neuropil.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 6 * 6, 8), nn.BatchNorm1d(8), nn.ReLU(),
                          nn.Linear(8, 2)).double()
    x = rng.standard_normal((10, 1, 6, 6))
    gradcheck(model, x, max_checks=40)
    info = model.summary((1, 6, 6), print_fn=lambda *_: None)
    assert info["layers"][1][2] == ("N", 4, 6, 6)


# --- PyTorch cross-checks (skipped when torch is not installed) ---------------------

@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dims,shape", [(1, (7, 5)), (1, (4, 5, 6)), (2, (3, 5, 4, 7)),
                                        (2, (1, 5, 9, 9))])
def test_matches_torch(dims, shape, dtype, momentum, rng):
    torch = pytest.importorskip("torch")
    c = shape[1]
    ours = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(c, momentum=momentum, eps=1e-3)
    ours.to(dtype)
    theirs = (torch.nn.BatchNorm1d if dims == 1 else torch.nn.BatchNorm2d)(
        c, momentum=momentum, eps=1e-3).to(torch.float32 if dtype == np.float32 else torch.float64)
    w = rng.uniform(0.5, 2, c).astype(dtype)
    bias = rng.standard_normal(c).astype(dtype)
    ours.weight.data[:] = w
    ours.bias.data[:] = bias
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for step in range(3):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        ours.zero_grad()
        y = ours(x)
        dx = ours.backward(dy)
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        theirs.zero_grad()
        ty = theirs(tx)
        ty.backward(torch.from_numpy(dy))
        np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
        np.testing.assert_allclose(dx, tx.grad.numpy(), **tol)
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), **tol)
        np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), **tol)
        for k, v in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), **tol)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    theirs(tx).backward(torch.from_numpy(dy))
    np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).detach().numpy(), **tol)
    np.testing.assert_allclose(ours.backward(dy), tx.grad.numpy(), **tol)


def test_strided_and_read_only_inputs(rng):
    base = rng.standard_normal((6, 3, 8, 10)).astype(np.float32)
    x = base[::2, :, :, ::2]  # non-contiguous view
    x.flags.writeable = False
    layer = nn.BatchNorm2d(3)
    np.testing.assert_array_equal(layer(x), nn.BatchNorm2d(3)(np.ascontiguousarray(x)))
    g = layer.backward(np.ones(x.shape, np.float32)[:, :, :, :])
    assert g.shape == x.shape
    y = F.batch_norm(np.swapaxes(base, 2, 3), None, None, training=True)
    np.testing.assert_array_equal(
        y, F.batch_norm(np.ascontiguousarray(np.swapaxes(base, 2, 3)), None, None, training=True))
