"""Losses: CrossEntropyLoss and NLLLoss over (N, C, d1, ...) with class weights and
ignore_index, MSELoss, L1Loss, BCELoss, BCEWithLogitsLoss, every reduction ('none'
included), against NumPy references on awkward shapes; float64 gradient checks;
thread determinism; bad input; PyTorch cross-checks when torch is importable."""
import numpy as np
import pytest

import neuropil
from neuropil import functional as F
from neuropil import nn, optim
from neuropil.testing import gradcheck_loss

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]
# input shapes (N, C, d1, ...): batch 1, C = 1, 7, 17; more positions than a loss chunk
# (256) or a block (64); many classes (blocks of 4 positions); per-pixel maps.
CLASS_SHAPES = [(1, 1), (1, 7), (17, 3), (300, 10), (7, 17, 1), (2, 5, 3, 4), (1, 3, 17, 7),
                (3, 4, 129), (2, 1000, 3)]


def _rtol(dtype):
    return 2e-5 if dtype == np.float32 else 1e-12


def _log_softmax(x, axis=1):
    x = x.astype(np.float64)
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _reduce(per, grad_per, red, denom):
    """per-position losses and their gradient (of sum) -> (value, grad) for a reduction."""
    if red == "none":
        return per, grad_per
    if red == "sum":
        return per.sum(), grad_per
    return per.sum() / denom, grad_per / denom


def ref_class_labels(x, y, weight, ignore_index, red, nll=False):
    """Reference CE (logits) or NLL (log-probabilities) with labels y (N, d...)."""
    x = x.astype(np.float64)
    C = x.shape[1]
    w = np.ones(C) if weight is None else weight.astype(np.float64)
    keep = y != ignore_index
    ys = np.where(keep, y, 0)
    wy = np.where(keep, w[ys], 0.0)
    lp = x if nll else _log_softmax(x)
    picked = np.take_along_axis(lp, ys[:, None], axis=1)[:, 0]
    per = -wy * picked
    onehot = np.zeros_like(x)
    np.put_along_axis(onehot, ys[:, None], 1.0, axis=1)
    if nll:
        g = -onehot * wy[:, None]
    else:
        g = (np.exp(lp) - onehot) * wy[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return _reduce(per, g, red, wy.sum())


def ref_ce_probs(x, t, weight, red):
    lp = _log_softmax(x)
    C = x.shape[1]
    shape = (1, C) + (1,) * (x.ndim - 2)
    w = (np.ones(C) if weight is None else weight.astype(np.float64)).reshape(shape)
    tw = t.astype(np.float64) * w
    per = -(tw * lp).sum(axis=1)
    g = np.exp(lp) * tw.sum(axis=1, keepdims=True) - tw
    return _reduce(per, g, red, per.size)


def ref_pointwise(kind, p, t, red):
    p, t = p.astype(np.float64), t.astype(np.float64)
    if kind == "mse":
        per, g = (p - t) ** 2, 2 * (p - t)
    elif kind == "l1":
        per, g = np.abs(p - t), np.sign(p - t)
    elif kind == "bce_logits":
        per = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
        g = 1 / (1 + np.exp(-p)) - t
    else:
        with np.errstate(divide="ignore"):
            per = -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log1p(-p), -100))
        g = (p - t) / np.maximum(p * (1 - p), 1e-12)
    return _reduce(per, g, red, per.size)


def _labels(rng, shape, C, ignore_index=-100, ignored=0.2):
    y = rng.integers(0, C, shape[:1] + shape[2:])
    y[rng.random(y.shape) < ignored] = ignore_index
    return y


def _check(value, grad, want_value, want_grad, dtype, red):
    if red == "none":
        assert isinstance(value, np.ndarray) and value.dtype == dtype
        assert value.shape == np.shape(want_value)
        np.testing.assert_allclose(value, want_value, rtol=_rtol(dtype), atol=_rtol(dtype))
    else:
        assert isinstance(value, float)
        np.testing.assert_allclose(value, want_value, rtol=_rtol(dtype), atol=1e-30)
    scale = max(1.0, float(np.abs(want_grad).max()) if want_grad.size else 1.0)
    np.testing.assert_allclose(grad, want_grad, rtol=_rtol(dtype), atol=_rtol(dtype) * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_and_nll_with_labels(rng, dtype, shape, red, weighted):
    C = shape[1]
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    weight = (rng.random(C) + 0.5).astype(dtype) if weighted else None
    for ignore_index in (-100, C - 1):
        if C == 1 and ignore_index == 0:
            continue  # every label would be ignored (test_every_target_ignored)
        y = _labels(rng, shape, C, ignore_index)
        if np.all(y == ignore_index):
            y.flat[0] = 0 if ignore_index != 0 else 1
        grad = np.full(shape, np.nan, dtype)  # every element must be written
        value = F.cross_entropy(x, y, red, weight=weight, ignore_index=ignore_index, grad=grad)
        _check(value, grad, *ref_class_labels(x, y, weight, ignore_index, red), dtype, red)
        lp = _log_softmax(x).astype(dtype)
        grad = np.full(shape, np.nan, dtype)
        value = F.nll_loss(lp, y, red, weight=weight, ignore_index=ignore_index, grad=grad)
        _check(value, grad, *ref_class_labels(lp, y, weight, ignore_index, red, nll=True), dtype, red)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("red", REDUCTIONS)
def test_cross_entropy_with_probabilities(rng, dtype, shape, red):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    t = rng.random(shape).astype(dtype)
    t /= t.sum(axis=1, keepdims=True)
    for weight in (None, (rng.random(shape[1]) + 0.5).astype(dtype)):
        grad = np.full(shape, np.nan, dtype)
        value = F.cross_entropy(x, t, red, weight=weight, grad=grad)
        _check(value, grad, *ref_ce_probs(x, t, weight, red), dtype, red)
    # one-hot targets agree with the labels
    y = rng.integers(0, shape[1], shape[:1] + shape[2:])
    onehot = np.moveaxis(F.one_hot(y, shape[1], dtype=dtype), -1, 1)
    g1, g2 = np.empty_like(x), np.empty_like(x)
    v1 = F.cross_entropy(x, y, red, grad=g1)
    v2 = F.cross_entropy(x, np.ascontiguousarray(onehot), red, grad=g2)
    np.testing.assert_allclose(v1, v2, rtol=_rtol(dtype))
    np.testing.assert_allclose(g1, g2, rtol=_rtol(dtype), atol=_rtol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (17, 3), (2, 1, 5, 7), (5000, 3)], ids=str)
@pytest.mark.parametrize("red", REDUCTIONS)
@pytest.mark.parametrize("kind", ["mse", "l1", "bce_logits", "bce"])
def test_pointwise_losses(rng, dtype, shape, red, kind):
    if kind == "bce":
        p = rng.random(shape).astype(dtype)
        p.flat[:2] = [0.0, 1.0][:p.size]  # the clamps
    else:
        p = (rng.standard_normal(shape) * 4).astype(dtype)
    t = rng.random(shape).astype(dtype)
    if kind == "l1":
        t.flat[0] = p.flat[0]  # sign(0) = 0
    fn = {"mse": F.mse_loss, "l1": F.l1_loss, "bce_logits": F.binary_cross_entropy_with_logits,
          "bce": F.binary_cross_entropy}[kind]
    grad = np.full(shape, np.nan, dtype)
    value = fn(p, t, red, grad=grad)
    want_value, want_grad = ref_pointwise(kind, p, t, red)
    _check(value, grad, want_value, want_grad, dtype, red)
    if red == "none":
        out = np.empty(shape, dtype)
        assert fn(p, t, "none", out=out) is out
        np.testing.assert_array_equal(out, value)


def test_losses_are_stable_for_huge_values():
    x = np.array([-1e4, 1e4, -100.0, 100.0])
    t = np.array([1.0, 0.0, 0.0, 1.0])
    with np.errstate(all="raise"):
        assert F.binary_cross_entropy_with_logits(x, t, "sum") == 2e4
        np.testing.assert_array_equal(F.binary_cross_entropy_with_logits(x, t, "none"),
                                      [1e4, 1e4, 3.720075976020836e-44, 3.720075976020836e-44])
        # probabilities rounded to 0 or 1: PyTorch's clamp at -100 keeps the loss finite
        p = np.array([0.0, 1.0, 0.0, 1.0], np.float32)
        losses = F.binary_cross_entropy(p, np.array([1.0, 0.0, 0.0, 1.0], np.float32), "none")
        np.testing.assert_array_equal(losses, [100.0, 100.0, 0.0, 0.0])
        g = np.empty(4, np.float32)
        F.binary_cross_entropy(p, np.array([1.0, 0.0, 0.0, 1.0], np.float32), "sum", grad=g)
        np.testing.assert_allclose(g, [-1e12, 1e12, 0.0, 0.0], rtol=1e-6)
        # cross-entropy of logits far apart
        big = np.array([[1e4, -1e4, 0.0]], np.float32)
        assert F.cross_entropy(big, [1]) == 2e4
        assert F.cross_entropy(big, [0]) == 0


@pytest.mark.parametrize("red", REDUCTIONS)
def test_every_target_ignored(red):
    x = np.random.default_rng(0).standard_normal((3, 4, 2))
    y = np.full((3, 2), -100)
    for fn, inp in ((F.cross_entropy, x), (F.nll_loss, _log_softmax(x))):
        grad = np.full(x.shape, np.nan)
        value = fn(inp, y, red, grad=grad)
        np.testing.assert_array_equal(grad, 0)  # no position contributes a gradient
        if red == "mean":
            assert np.isnan(value)  # 0 / 0, as PyTorch
        elif red == "sum":
            assert value == 0
        else:
            np.testing.assert_array_equal(value, np.zeros((3, 2)))
    loss = nn.CrossEntropyLoss()
    assert np.isnan(loss(x, y))
    np.testing.assert_array_equal(loss.backward(), 0)


def test_ignore_index_and_weights_by_hand():
    x = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]))
    y = np.array([0, 1, 2])
    w = np.array([1.0, 2.0, 3.0])
    # NLL of log-probabilities: -(1 log .5 + 2 log .8 + 3 log .6) / (1 + 2 + 3)
    want = -(np.log(0.5) + 2 * np.log(0.8) + 3 * np.log(0.6)) / 6
    np.testing.assert_allclose(F.nll_loss(x, y, weight=w), want, rtol=1e-14)
    np.testing.assert_allclose(F.cross_entropy(x, y, weight=w), want, rtol=1e-14)
    # ignoring the middle sample: -(log .5 + 3 log .6) / 4
    np.testing.assert_allclose(F.nll_loss(x, [0, 7, 2], weight=w, ignore_index=7),
                               -(np.log(0.5) + 3 * np.log(0.6)) / 4, rtol=1e-14)
    np.testing.assert_allclose(F.nll_loss(x, y, "none", weight=w),
                               -w * np.log([0.5, 0.8, 0.6]), rtol=1e-14)


def test_unbatched_input_as_pytorch():
    x = np.array([1.0, 2.0, 0.5])
    lse = np.log(np.exp(x).sum())
    np.testing.assert_allclose(F.cross_entropy(x, 1), lse - 2.0, rtol=1e-14)
    losses = F.cross_entropy(x, 1, "none")
    assert losses.shape == () and np.isclose(losses, lse - 2.0)
    loss = nn.CrossEntropyLoss(reduction="none")
    assert loss(x, np.int64(2)).shape == ()
    g = loss.backward(np.float64(3.0))
    np.testing.assert_allclose(g, 3 * (np.exp(x - lse) - [0, 0, 1]), rtol=1e-14)
    np.testing.assert_allclose(F.cross_entropy(x, np.array([0.2, 0.3, 0.5])),
                               -(np.array([0.2, 0.3, 0.5]) * (x - lse)).sum(), rtol=1e-14)


def test_a_0d_label_of_any_integer_dtype_stays_0d():
    """A 0-d int32/uint8 label converted to int64 kept its 0-d shape (it became (1,),
    refused for an unbatched input and one_hot gave (1, C))."""
    x = np.array([1.0, 2.0, 0.5])
    want = F.cross_entropy(x, np.int64(1))
    for label in (np.int32(1), np.array(1, np.uint8), np.array(1, np.int16)):
        assert F.cross_entropy(x, label) == want
        assert F.nll_loss(np.log([0.2, 0.5, 0.3]), label) == -np.log(0.5)
        assert F.one_hot(label, 4).shape == (4,)
    assert F.one_hot(np.array([[2]], np.int32), 3).shape == (1, 1, 3)


# --- layers -----------------------------------------------------------------------

def _class_case(rng, shape=(4, 3, 2, 5)):
    x = rng.standard_normal(shape) * 2
    y = rng.integers(0, shape[1], shape[:1] + shape[2:])
    y.flat[::7] = -100
    return x, y


@pytest.mark.parametrize("red", REDUCTIONS)
def test_loss_layers_gradcheck_float64(rng, red):
    x, y = _class_case(rng)
    w = rng.random(3) + 0.5
    for loss in (nn.CrossEntropyLoss(reduction=red), nn.CrossEntropyLoss(weight=w, reduction=red),
                 nn.CrossEntropyLoss(weight=w, ignore_index=1, reduction=red)):
        gradcheck_loss(loss, x, np.where(y < 0, loss.ignore_index, y), atol=1e-7)
        gradcheck_loss(loss, x[:, :, 0, 0], y[:, 0, 0].clip(0), atol=1e-7)
    t = rng.random(x.shape)
    gradcheck_loss(nn.CrossEntropyLoss(weight=w, reduction=red), x, t, atol=1e-7)
    lp = _log_softmax(x)
    gradcheck_loss(nn.NLLLoss(weight=w, reduction=red), lp, y, atol=1e-7)
    gradcheck_loss(nn.NLLLoss(reduction=red), lp[:, :, 0, 0], y[:, 0, 0].clip(0), atol=1e-7)
    p = rng.standard_normal((3, 1, 4, 5))
    tgt = rng.random(p.shape)
    gradcheck_loss(nn.MSELoss(red), p, tgt, atol=1e-7)
    p[np.abs(p - tgt) < 1e-3] += 0.01  # off L1's kink
    gradcheck_loss(nn.L1Loss(red), p, tgt, atol=1e-7)
    gradcheck_loss(nn.BCEWithLogitsLoss(red), p, tgt, atol=1e-7)
    gradcheck_loss(nn.BCELoss(red), 0.05 + 0.9 * rng.random(p.shape), tgt, atol=1e-7)


def test_none_reduction_protocol(rng):
    x, y = _class_case(rng)
    loss = nn.CrossEntropyLoss(reduction="none")
    losses = loss(x, y)
    assert losses.shape == (4, 2, 5) and losses.dtype == x.dtype
    np.testing.assert_array_equal(losses[y == -100], 0)
    g_sum = loss.backward()  # None: the gradient of losses.sum()
    np.testing.assert_allclose(g_sum, ref_class_labels(x, y, None, -100, "none")[1], rtol=1e-13)
    up = rng.standard_normal(losses.shape)
    up_copy = up.copy()
    dx = loss.backward(up)
    np.testing.assert_array_equal(up, up_copy)  # grad_out never modified
    np.testing.assert_allclose(dx, g_sum * up[:, None], rtol=1e-13)
    assert loss.backward(up) is dx  # training mode: reused buffer
    np.testing.assert_allclose(loss.backward(2.0), 2 * g_sum, rtol=1e-15)
    with pytest.raises(ValueError, match=r"grad_out must have the losses' shape \(4, 2, 5\), "
                                         r"got \(4, 3, 2, 5\)"):
        loss.backward(x)
    # elementwise: the losses have the input's shape
    mse = nn.MSELoss("none")
    p, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(mse(p, t), (p - t) ** 2, rtol=1e-15)
    np.testing.assert_allclose(mse.backward(up[:3, 0, :4].copy()), 2 * (p - t) * up[:3, 0, :4],
                               rtol=1e-15)
    # float32 losses, float64 upstream gradient: cast, not rejected
    m32 = nn.L1Loss("none")
    m32(p.astype(np.float32), t.astype(np.float32))
    assert m32.backward(np.ones((3, 4))).dtype == np.float32
    # mean/sum: the loss is a scalar, and so must grad_out be
    m = nn.MSELoss()
    m(p, t)
    with pytest.raises(ValueError, match=r"grad_out must be a scalar, got shape \(3, 4\)"):
        m.backward(np.ones((3, 4)))


def test_loss_layer_arguments_and_state(rng):
    w = np.array([1.0, 2.0, 0.5])
    loss = nn.CrossEntropyLoss(w, ignore_index=3, reduction="sum")
    assert repr(loss) == "CrossEntropyLoss(weight=array(shape=(3,)), ignore_index=3, reduction='sum')"
    assert list(loss.state_dict()) == ["weight"]  # a buffer, as in PyTorch
    w[0] = 9  # the loss keeps its own copy
    assert loss.weight[0] == 1.0
    loss.float()
    assert loss.weight.dtype == np.float32
    x = rng.standard_normal((5, 3))
    loss(x, [0, 1, 3, 2, 3])  # float64 input with float32 weights: cast internally
    assert repr(nn.NLLLoss()) == "NLLLoss(reduction='mean')"
    assert repr(nn.BCELoss()) == "BCELoss(reduction='mean')"
    assert nn.L1Loss()._reentrant and nn.CrossEntropyLoss()._reentrant
    with pytest.raises(TypeError, match=r"weight must be an array of per-class weights or None, "
                                        r"got 'sum' \(pass reduction='sum' by keyword\)"):
        nn.CrossEntropyLoss("sum")
    with pytest.raises(ValueError, match=r"weight must be a non-empty 1-D array"):
        nn.NLLLoss(np.ones((2, 2)))
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        nn.NLLLoss(ignore_index=1.5)
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        nn.L1Loss("avg")
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: cross_entropy: weight must have "
                                         r"shape \(4,\), got \(3,\)"):
        nn.CrossEntropyLoss(w)(rng.standard_normal((2, 4)), [0, 1])


def test_fit_with_per_pixel_losses_and_none_refused(rng):
    x = rng.standard_normal((8, 1, 6, 6)).astype(np.float32)
    seg = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1))
    y = rng.integers(0, 3, (8, 6, 6))
    y[:, 0, :] = 255
    hist = seg.fit(x, y, loss=nn.CrossEntropyLoss(ignore_index=255),
                   optimizer=optim.SGD(seg.parameters(), lr=0.1), epochs=2, verbose=0)
    assert np.all(np.isfinite(hist.history["loss"])) and "accuracy" in hist.history
    mask = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1))
    ym = (rng.random((8, 1, 6, 6)) > 0.5).astype(np.float32)
    for loss in (nn.BCEWithLogitsLoss(), "bce_with_logits"):
        hist = mask.fit(x, ym, loss=loss, optimizer=optim.SGD(mask.parameters(), lr=0.1),
                        epochs=1, verbose=0)
        assert np.isfinite(hist.history["loss"][0])
    with pytest.raises(ValueError, match=r"BCEWithLogitsLoss\(reduction='none'\) returns "
                                         r"per-element losses.*use reduction='mean' or 'sum'"):
        mask.fit(x, ym, loss=nn.BCEWithLogitsLoss(reduction="none"),
                 optimizer=optim.SGD(mask.parameters(), lr=0.1), verbose=0)
    with pytest.raises(ValueError, match="reduction='none'"):
        mask.evaluate(x, ym, loss=nn.MSELoss("none"))


# --- determinism and bad input ------------------------------------------------------

def test_bitwise_identical_for_any_thread_count(rng, threads):
    x = rng.standard_normal((64, 5, 32, 32)).astype(np.float32)  # 64K positions
    y = _labels(rng, x.shape, 5)
    w = (rng.random(5) + 0.5).astype(np.float32)
    t = rng.random(x.shape).astype(np.float32)
    p = rng.random(x.shape).astype(np.float32)

    up = rng.standard_normal((64, 32, 32)).astype(np.float32)

    def run():
        out = []
        for red in REDUCTIONS:
            for fn, inp, tgt, kw in ((F.cross_entropy, x, y, {"weight": w}),
                                     (F.cross_entropy, x, t, {}),
                                     (F.nll_loss, x, y, {"weight": w}),
                                     (F.mse_loss, x, t, {}), (F.l1_loss, x, t, {}),
                                     (F.binary_cross_entropy_with_logits, x, t, {}),
                                     (F.binary_cross_entropy, p, t, {})):
                g = np.empty_like(inp)
                out += [np.asarray(fn(inp, tgt, red, grad=g, **kw)), g]
                if red == "none" and fn is F.cross_entropy and tgt is y:
                    out.append(F.loss_backward(g, up, class_axis=True))
        return out

    neuropil.set_num_threads(1)
    one = run()
    neuropil.set_num_threads(2)
    two = run()
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_nan_propagates():
    x = np.array([[np.nan, 1.0], [0.0, 1.0]])
    losses = F.cross_entropy(x, [0, 1], "none")
    assert np.isnan(losses[0]) and np.isfinite(losses[1])
    assert np.isnan(F.nll_loss(x, [0, 1]))
    for fn in (F.mse_loss, F.l1_loss, F.binary_cross_entropy_with_logits, F.binary_cross_entropy):
        p = np.array([np.nan, 0.5])
        g = np.empty(2)
        losses = fn(p, np.array([0.5, 0.5]), "none", grad=g)
        assert np.isnan(losses[0]) and np.isfinite(losses[1]), fn.__name__
        assert np.isnan(g[0]) and np.isfinite(g[1]), fn.__name__


def test_bad_input_errors():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"cross_entropy: target label 5 at index \(1, 2\) is out "
                                         r"of range for 3 classes \(expected 0..2 or ignore_index "
                                         r"-100\)"):
        F.cross_entropy(x, np.array([[0, 1, 2, 0], [0, 1, 5, 0]]))
    with pytest.raises(ValueError, match=r"nll_loss: target label -100 at index 0 .* ignore_index 7"):
        F.nll_loss(np.zeros((2, 3)), [-100, 1], ignore_index=7)
    with pytest.raises(ValueError, match=r"target must have shape \(2, 4\) for input of shape "
                                         r"\(2, 3, 4\) .*got \(2, 3\)"):
        F.cross_entropy(x, np.zeros((2, 3), np.int64))
    with pytest.raises(TypeError, match=r"nll_loss: a target of shape \(2, 4\) holds class labels "
                                        r"and must be integers, got dtype float64"):
        F.nll_loss(x, np.zeros((2, 4)))
    with pytest.raises(TypeError, match="nll_loss: a target of shape .* holds class labels"):
        F.nll_loss(x, np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match="class labels must be integers, got dtype bool"):
        F.cross_entropy(x, np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: input must hold probabilities in "
                                         r"\[0, 1\], but input\[\(1, 0\)\] is 1.5"):
        F.binary_cross_entropy(np.array([[0.5, 0.2], [1.5, 0.1]]), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"input\[0\] is -0.25"):
        nn.BCELoss()(np.array([-0.25, 2.0], np.float32), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match=r"mse_loss: target must have the input's shape \(2, 3, 4\)"):
        F.mse_loss(x, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"losses must have shape \(2, 4\), got \(2, 3, 4\)"):
        F.cross_entropy(x, np.zeros((2, 4), np.int64), "none", out=np.empty((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="out= holds per-element losses and needs reduction='none'"):
        F.l1_loss(x, x, out=np.empty_like(x))
    with pytest.raises(TypeError, match="cross_entropy: weight is float64 but input is float32|"
                                        "cross_entropy: input is float32 but weight is float64"):
        neuropil._kernels.cross_entropy(np.zeros((2, 3), np.float32), np.zeros(2, np.int64),
                                        None, 0, np.ones(3))
    with pytest.raises(ValueError, match="reduction 2 \\(none\\) needs a losses array"):
        neuropil._kernels.mse_loss(np.zeros(2), np.zeros(2), None, 2)
    with pytest.raises(ValueError, match="input is empty"):
        F.cross_entropy(np.zeros((0, 3, 2)), np.zeros((0, 2), np.int64))
    with pytest.raises(ValueError, match="l1_loss: input is empty"):
        F.l1_loss(np.zeros(0), np.zeros(0))
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        F.cross_entropy(x, np.zeros((2, 4), np.int64), ignore_index=None)


def test_loss_backward_functional(rng):
    g = rng.standard_normal((2, 3, 4))
    up = rng.standard_normal((2, 4))
    np.testing.assert_allclose(F.loss_backward(g, up, class_axis=True), g * up[:, None], rtol=1e-15)
    np.testing.assert_allclose(F.loss_backward(g, g), g * g, rtol=1e-15)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 4\), got \(2, 3\)"):
        F.loss_backward(g, up[:, :3], class_axis=True)
    # unbatched (C,): the one loss is 0-d; a (1,) or (1, 1) grad_out is not its shape
    np.testing.assert_allclose(F.loss_backward(g[0, :, 0], np.float64(2.0), class_axis=True),
                               2 * g[0, :, 0], rtol=1e-15)
    for bad in (np.ones(1), np.ones((1, 1))):
        with pytest.raises(ValueError, match="grad_out must be 0-d"):
            F.loss_backward(g[0, :, 0], bad, class_axis=True)
    with pytest.raises(ValueError, match=r"out must have the shape of grad \(3,\)"):
        F.loss_backward(g[0, :, 0], np.float64(1), class_axis=True, out=np.zeros((1, 3)))
    # nor does an unbatched input take a (1, C) grad=
    for fn in (F.cross_entropy, F.nll_loss):
        with pytest.raises(ValueError, match=r"grad must have the input's shape \(3,\)"):
            fn(np.zeros(3), np.int64(0), grad=np.zeros((1, 3)))


# --- PyTorch cross-check --------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("red", REDUCTIONS)
def test_matches_pytorch(rng, dtype, red):
    torch = pytest.importorskip("torch")
    x, y = _class_case(rng, (5, 4, 3, 2))
    x = x.astype(dtype)
    w = (rng.random(4) + 0.5).astype(dtype)
    t = rng.random(x.shape).astype(dtype)
    p = (0.02 + 0.96 * rng.random(x.shape)).astype(dtype)
    cases = [
        (nn.CrossEntropyLoss(reduction=red), torch.nn.CrossEntropyLoss(reduction=red), x, y),
        (nn.CrossEntropyLoss(w, reduction=red),
         torch.nn.CrossEntropyLoss(torch.tensor(w), reduction=red), x, y),
        (nn.CrossEntropyLoss(w, reduction=red),
         torch.nn.CrossEntropyLoss(torch.tensor(w), reduction=red), x, t),
        (nn.NLLLoss(w, reduction=red), torch.nn.NLLLoss(torch.tensor(w), reduction=red),
         _log_softmax(x).astype(dtype), y),
        (nn.MSELoss(red), torch.nn.MSELoss(reduction=red), x, t),
        (nn.L1Loss(red), torch.nn.L1Loss(reduction=red), x, t),
        (nn.BCEWithLogitsLoss(red), torch.nn.BCEWithLogitsLoss(reduction=red), x, t),
        (nn.BCELoss(red), torch.nn.BCELoss(reduction=red), p, t),
    ]
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    for ours, theirs, inp, tgt in cases:
        xt = torch.tensor(inp, requires_grad=True)
        lt = theirs(xt, torch.tensor(tgt))
        up = rng.standard_normal(tuple(lt.shape)).astype(dtype)
        (lt * torch.tensor(up)).sum().backward()
        value = ours(inp, tgt)
        grad = ours.backward(up if red == "none" else float(up))
        np.testing.assert_allclose(value, lt.detach().numpy(), rtol=rtol, atol=rtol,
                                   err_msg=repr(ours))
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=rtol, atol=rtol, err_msg=repr(ours))


def test_bindings_never_copy_or_write_read_only_arrays():
    K = neuropil._kernels
    x = np.ones((4, 6))
    with pytest.raises(ValueError, match="cross_entropy: input must be C-contiguous"):
        K.cross_entropy(x[:, ::2], np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="cross_entropy: target must be C-contiguous"):
        K.cross_entropy(x, np.zeros((4, 2), np.int64)[:, 0])
    ro = np.empty((4, 6))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="grad is read-only"):
        K.cross_entropy(x, np.zeros(4, np.int64), ro)
    with pytest.raises(ValueError, match="losses is read-only"):
        K.mse_loss(x, x.copy(), None, 2, ro)
    with pytest.raises(ValueError, match="losses overlaps grad"):
        g = np.empty((4, 6))
        K.l1_loss(x, x.copy(), g, 2, g)
    with pytest.raises(ValueError, match="losses overlaps weight"):
        w = np.ones(4)  # the per-position losses of (4, 4) logits have the weight's shape
        K.cross_entropy(np.ones((4, 4)), np.zeros(4, np.int64), None, 2, w, -100, w)
    with pytest.raises(TypeError, match="grad must be a numpy.ndarray or None, got list"):
        K.nll_loss(x, np.zeros(4, np.int64), [0.0])
    with pytest.raises(ValueError, match=r"reduction code must be 0 \(mean\), 1 \(sum\) or 2 \(none\)"):
        K.bce_with_logits(x, x.copy(), None, 3)
    with pytest.raises(TypeError, match="grad_out is float32 but grad is float64|grad is float64 "
                                        "but grad_out is float32"):
        K.scale_loss_grad(x, np.ones(4, np.float32), np.empty_like(x), True)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(4, 6\), got \(4,\)"):
        K.scale_loss_grad(x, np.ones(4), np.empty_like(x), False)


def test_none_reduction_in_a_hand_written_loop(rng):
    """Per-pixel losses weighted by hand give the mean loss's gradients when the weights
    are 1 / count: the 'none' protocol composes with a model's backward."""
    x = rng.standard_normal((2, 1, 5, 4))
    y = rng.integers(0, 3, (2, 5, 4))
    neuropil.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1)).double()
    grads = []
    for loss, up in ((nn.CrossEntropyLoss(), None),
                     (nn.CrossEntropyLoss(reduction="none"), np.full((2, 5, 4), 1 / 40))):
        model.zero_grad()
        value = loss(model(x), y)
        model.backward(loss.backward(up))
        if up is not None:
            value = float((value * up).sum())
        grads.append((value, [p.grad.copy() for p in model.parameters()]))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-13)
    for a, b in zip(grads[0][1], grads[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
