"""Elementwise / loss kernels against plain NumPy references on awkward shapes."""
import numpy as np
import pytest

import neuropil
from neuropil import functional as F
from neuropil import _kernels as K

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-6, atol=1e-6), np.float64: dict(rtol=1e-13, atol=1e-14)}
# (N, C): batch 1, sizes around vector widths and chunk sizes (bias chunk 512 rows,
# loss chunk 256 rows, column blocks of 64).
SHAPES = [(1, 1), (1, 7), (7, 1), (17, 17), (127, 129), (129, 127), (3, 64), (5, 65),
          (513, 3), (1100, 70)]


def _tol(dtype, scale=1.0):
    t = TOL[dtype]
    return dict(rtol=t["rtol"] * scale, atol=t["atol"] * scale)


def ref_sigmoid(x):
    x = x.astype(np.float64)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def ref_log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def ref_softmax(x):
    return np.exp(ref_log_softmax(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c", SHAPES)
def test_activations_match_numpy(rng, dtype, n, c):
    x = (rng.standard_normal((n, c)) * 3).astype(dtype)
    dy = rng.standard_normal((n, c)).astype(dtype)
    refs = {"relu": np.maximum(x.astype(np.float64), 0), "sigmoid": ref_sigmoid(x),
            "tanh": np.tanh(x.astype(np.float64))}
    dref = {"relu": lambda y: dy * (y > 0), "sigmoid": lambda y: dy * y * (1 - y),
            "tanh": lambda y: dy * (1 - y * y)}
    for name, ref in refs.items():
        y = getattr(F, name)(x)
        assert y.dtype == dtype and y.shape == x.shape
        np.testing.assert_allclose(y, ref, **_tol(dtype, 4))
        dx = getattr(F, f"{name}_backward")(y, dy)
        np.testing.assert_allclose(dx, dref[name](y.astype(np.float64)), **_tol(dtype, 4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_in_place_and_any_rank(rng, dtype):
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    expect = np.tanh(x.astype(np.float64))
    out = F.tanh(x, out=x)
    assert out is x
    np.testing.assert_allclose(x, expect, **_tol(dtype, 4))
    dy = rng.standard_normal(x.shape).astype(dtype)
    want = dy * (x > 0)
    F.relu_backward(x, dy, out=dy)  # dx written over dy
    np.testing.assert_allclose(dy, want)


def test_sigmoid_is_stable_for_huge_inputs():
    for dtype in DTYPES:
        x = np.array([-1e4, -800, -100, -20, 0, 20, 100, 800, 1e4, -np.inf, np.inf], dtype)
        with np.errstate(all="raise"):
            y = F.sigmoid(x)
        assert np.all(np.isfinite(y))
        np.testing.assert_allclose(y, ref_sigmoid(np.clip(x, -1e4, 1e4)), rtol=1e-6, atol=1e-37)  # float32 denormals
        assert y[0] == 0 and y[-1] == 1 and y[4] == 0.5


def test_nan_passes_through_forward():
    x = np.array([np.nan, 1.0, -1.0], np.float32)
    for fn in (F.relu, F.sigmoid, F.tanh):
        y = fn(x)
        assert np.isnan(y[0]) and np.all(np.isfinite(y[1:]))
    s = F.softmax(np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]]))
    assert np.all(np.isnan(s[0])) and np.all(np.isfinite(s[1]))
    assert np.isnan(F.cross_entropy(np.array([[np.nan, 1.0]]), [0]))
    assert np.isnan(F.mse_loss([np.nan, 1.0], [0.0, 1.0]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c", SHAPES)
@pytest.mark.parametrize("act", ["identity", "relu", "sigmoid", "tanh"])
def test_bias_activation(rng, dtype, n, c, act):
    x = rng.standard_normal((n, c)).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    z = x.astype(np.float64) + b.astype(np.float64)
    ref = {"identity": z, "relu": np.maximum(z, 0), "sigmoid": ref_sigmoid(z), "tanh": np.tanh(z)}[act]
    np.testing.assert_allclose(F.bias_activation(x, b, act), ref, **_tol(dtype, 8))
    F.bias_activation(x, b, act, out=x)  # in place (the GEMM epilogue)
    np.testing.assert_allclose(x, ref, **_tol(dtype, 8))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c", SHAPES + [(0, 5), (2000, 3)])
def test_bias_grad_column_sums(rng, dtype, n, c):
    dy = rng.standard_normal((n, c)).astype(dtype)
    ref = dy.astype(np.float64).sum(axis=0)
    out = np.full(c, np.nan, dtype)  # beta = 0: never read
    F.bias_grad(dy, out=out)
    np.testing.assert_allclose(out, ref, **_tol(dtype, 10 * max(1, n) ** 0.5))
    F.bias_grad(dy, out=out, accumulate=True)
    np.testing.assert_allclose(out, 2 * ref, **_tol(dtype, 20 * max(1, n) ** 0.5))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c", SHAPES)
def test_softmax_and_log_softmax(rng, dtype, n, c):
    x = (rng.standard_normal((n, c)) * 5).astype(dtype)
    np.testing.assert_allclose(F.softmax(x), ref_softmax(x), **_tol(dtype, 8))
    np.testing.assert_allclose(F.log_softmax(x), ref_log_softmax(x), **_tol(dtype, 8 * max(1, c)))
    dy = rng.standard_normal((n, c)).astype(dtype)
    y = F.softmax(x)
    y64 = y.astype(np.float64)
    ref = y64 * (dy - (dy * y64).sum(-1, keepdims=True))
    np.testing.assert_allclose(F.softmax_backward(y, dy), ref, **_tol(dtype, 8 * max(1, c)))
    ly = F.log_softmax(x)
    ref = dy - np.exp(ly.astype(np.float64)) * dy.sum(-1, keepdims=True)
    np.testing.assert_allclose(F.log_softmax_backward(ly, dy), ref, **_tol(dtype, 8 * max(1, c)))


def test_softmax_documented_example_and_axis():
    np.testing.assert_array_equal(F.softmax([0.5, 1.8, -2.3, 0.9, 0.3]).round(2),
                                  [0.14, 0.52, 0.01, 0.21, 0.12])
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    np.testing.assert_allclose(F.softmax(x, axis=1), np.moveaxis(ref_softmax(np.moveaxis(x, 1, -1)), -1, 1),
                               rtol=1e-13)
    big = np.array([[1000.0, 1001.0, -1000.0]])  # would overflow without max subtraction
    np.testing.assert_allclose(F.softmax(big), ref_softmax(big), rtol=1e-13)
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        F.softmax(x, axis=3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c", SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_labels(rng, dtype, n, c, reduction):
    x = (rng.standard_normal((n, c)) * 4).astype(dtype)
    labels = rng.integers(0, c, n)
    ls = ref_log_softmax(x)
    per = -ls[np.arange(n), labels]
    s = n if reduction == "mean" else 1
    grad = np.full((n, c), np.nan, dtype)
    loss = F.cross_entropy(x, labels, reduction, grad=grad)
    np.testing.assert_allclose(loss, per.sum() / s, rtol=1e-5 if dtype == np.float32 else 1e-12)
    g_ref = np.exp(ls)
    g_ref[np.arange(n), labels] -= 1
    np.testing.assert_allclose(grad, g_ref / s, **_tol(dtype, 8))
    # in place: the gradient overwrites the logits
    x2 = x.copy()
    assert F.cross_entropy(x2, labels, reduction, grad=x2) == loss
    np.testing.assert_array_equal(x2, grad)


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32,
                                         np.int64, np.uint64])
def test_cross_entropy_any_integer_labels(label_dtype):
    x = np.random.default_rng(1).standard_normal((5, 4))
    labels = np.array([0, 3, 1, 2, 3])
    want = F.cross_entropy(x, labels)
    assert F.cross_entropy(x, labels.astype(label_dtype)) == want
    assert F.cross_entropy(x, list(labels)) == want
    assert F.cross_entropy(x, labels[::-1].copy()[::-1]) == want  # non-contiguous labels


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c", SHAPES)
def test_cross_entropy_probability_targets(rng, dtype, n, c):
    x = (rng.standard_normal((n, c)) * 3).astype(dtype)
    t = rng.random((n, c)).astype(dtype)
    t /= t.sum(1, keepdims=True)
    ls = ref_log_softmax(x)
    grad = np.empty_like(x)
    loss = F.cross_entropy(x, t, grad=grad)
    np.testing.assert_allclose(loss, -(t * ls).sum() / n, rtol=1e-5 if dtype == np.float32 else 1e-12)
    p = np.exp(ls)
    np.testing.assert_allclose(grad, (p * t.astype(np.float64).sum(1, keepdims=True) - t) / n,
                               **_tol(dtype, 8))
    # one-hot targets give the same loss and gradient as the labels
    labels = rng.integers(0, c, n)
    g1, g2 = np.empty_like(x), np.empty_like(x)
    l1 = F.cross_entropy(x, labels, "sum", grad=g1)
    l2 = F.cross_entropy(x, F.one_hot(labels, c, dtype=dtype), "sum", grad=g2)
    np.testing.assert_allclose(l1, l2, rtol=1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(g1, g2, **_tol(dtype, 8))


def test_one_hot():
    np.testing.assert_array_equal(F.one_hot([2, 0, 1], 3), np.eye(3, dtype=np.float32)[[2, 0, 1]])
    assert F.one_hot(np.array([[1, 0]], np.uint8), 2).shape == (1, 2, 2)
    with pytest.raises(ValueError, match="label 3 is out of range for 3 classes"):
        F.one_hot([0, 3], 3)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        F.one_hot([0], 0)
    with pytest.raises(TypeError, match="class labels must be integers"):
        F.one_hot([0.5], 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (17, 3), (127, 129), (5000, 3)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_and_bce(rng, dtype, shape, reduction):
    p = (rng.standard_normal(shape) * 4).astype(dtype)
    t = rng.random(shape).astype(dtype)
    s = p.size if reduction == "mean" else 1
    p64, t64 = p.astype(np.float64), t.astype(np.float64)
    rt = 1e-5 if dtype == np.float32 else 1e-12
    g = np.empty_like(p)
    np.testing.assert_allclose(F.mse_loss(p, t, reduction, grad=g), ((p64 - t64) ** 2).sum() / s, rtol=rt)
    np.testing.assert_allclose(g, 2 * (p64 - t64) / s, **_tol(dtype, 8))
    bce = np.maximum(p64, 0) - p64 * t64 + np.log1p(np.exp(-np.abs(p64)))
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(p, t, reduction, grad=g),
                               bce.sum() / s, rtol=rt)
    np.testing.assert_allclose(g, (ref_sigmoid(p64) - t64) / s, **_tol(dtype, 8))


def test_bce_is_stable_for_huge_logits():
    x = np.array([-1e4, 1e4, -100.0, 100.0])
    t = np.array([1.0, 0.0, 0.0, 1.0])
    with np.errstate(all="raise"):
        loss = F.binary_cross_entropy_with_logits(x, t, "sum")
    np.testing.assert_allclose(loss, 2e4, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7, 17), (127, 129)])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_dropout(rng, dtype, shape, p):
    x = (rng.standard_normal(shape) + 3).astype(dtype)  # no exact zeros
    y = F.dropout(x, p, seed=123)
    if p == 0:
        assert y is x
        return
    keep = y != 0
    np.testing.assert_allclose(y[keep], x[keep] / np.asarray(1 - p, dtype), rtol=1e-6)
    dy = rng.standard_normal(shape).astype(dtype)
    dx = F.dropout_backward(dy, p, 123)
    np.testing.assert_array_equal(dx != 0, keep & (dy != 0))
    np.testing.assert_allclose(dx[keep], dy[keep] / np.asarray(1 - p, dtype), rtol=1e-6)
    np.testing.assert_array_equal(F.dropout(x, p, seed=123), y)   # same seed, same mask
    assert F.dropout(x, p, training=False) is x


def test_dropout_rate_and_seed_dependence():
    x = np.ones(200_000, np.float32)
    for p in (0.2, 0.5, 0.8):
        frac = np.mean(F.dropout(x, p, seed=7) == 0)
        assert abs(frac - p) < 0.01
    assert not np.array_equal(F.dropout(x, 0.5, seed=1), F.dropout(x, 0.5, seed=2))
    neuropil.manual_seed(5)
    a = F.dropout(x, 0.5)
    neuropil.manual_seed(5)
    np.testing.assert_array_equal(F.dropout(x, 0.5), a)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,i,o", [(1, 1, 1), (1, 7, 17), (17, 127, 129), (129, 33, 10), (5, 3, 1)])
def test_linear_forward_backward(rng, dtype, n, i, o):
    x = rng.standard_normal((n, i)).astype(dtype)
    w = rng.standard_normal((o, i)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    tol = _tol(dtype, 20 * i)
    np.testing.assert_allclose(F.linear(x, w, b), x64 @ w64.T + b, **tol)
    np.testing.assert_allclose(F.linear(x, w), x64 @ w64.T, **tol)
    dy = rng.standard_normal((n, o)).astype(dtype)
    gw = np.ones((o, i), dtype)
    gb = np.ones(o, dtype)
    dx = F.linear_backward(dy, x, w, grad_weight=gw, grad_bias=gb)
    np.testing.assert_allclose(gw, 1 + dy.astype(np.float64).T @ x64, **_tol(dtype, 20 * n))
    np.testing.assert_allclose(gb, 1 + dy.astype(np.float64).sum(0), **_tol(dtype, 20 * n))
    np.testing.assert_allclose(dx, dy.astype(np.float64) @ w64, **_tol(dtype, 20 * o))
    assert F.linear_backward(dy, x, w, grad_input=False) is None


def test_linear_batched_leading_dims(rng):
    x = rng.standard_normal((2, 3, 5))
    w = rng.standard_normal((4, 5))
    np.testing.assert_allclose(F.linear(x, w), x @ w.T, rtol=1e-12)
    out = np.empty((2, 3, 4))
    assert F.linear(x, w, out=out) is out
    np.testing.assert_allclose(out, x @ w.T, rtol=1e-12)
    with pytest.raises(ValueError, match="linear: out must be C-contiguous"):
        F.linear(x, w, out=np.empty((4, 3, 2)).transpose(2, 1, 0))


def test_threads_give_bitwise_identical_results(rng, threads):
    n, c = 3000, 70
    x = rng.standard_normal((n, c)).astype(np.float32)
    t = rng.integers(0, c, n)
    w = rng.standard_normal((33, c)).astype(np.float32)

    def run():
        g = np.empty_like(x)
        loss = F.cross_entropy(x, t, grad=g)
        gb = F.bias_grad(x)
        gm = np.empty_like(x)
        mse = F.mse_loss(x, g, grad=gm)
        gw = np.zeros_like(w)
        gb2 = np.zeros(33, np.float32)
        dx = F.linear_backward(x[:, :33].copy(), x, w, grad_weight=gw, grad_bias=gb2)
        return dx, gb2, loss, g, gb, mse, gm, F.dropout(x, 0.3, seed=9), F.sigmoid(x), F.softmax(x), gw

    results = []
    for nt in (1, 2, 3):
        neuropil.set_num_threads(nt)
        results.append(run())
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


# --- bad input ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.complex64, bool])
def test_reject_non_float_arrays(dtype):
    x = np.ones((2, 3), dtype)
    for fn in (F.relu, F.sigmoid, F.tanh, F.softmax, F.log_softmax):
        with pytest.raises(TypeError, match="must be float32 or float64"):
            fn(x)
    with pytest.raises(TypeError, match="cross_entropy: input must be float32 or float64"):
        F.cross_entropy(x, [0, 1])
    with pytest.raises(TypeError, match="mse_loss: input must be float32 or float64"):
        F.mse_loss(x, np.ones((2, 3)))


def test_lists_are_accepted():
    np.testing.assert_array_equal(F.relu([-1, 2]), [0.0, 2.0])
    assert F.mse_loss([1, 2], [1, 4]) == 2.0
    np.testing.assert_allclose(F.linear([[1.0, 2.0]], [[3.0, 4.0]], [0.5]), [[11.5]])


def test_reject_bad_out():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"relu: out must have shape \(2, 3\), got \(3, 2\)"):
        F.relu(x, out=np.empty((3, 2), np.float32))
    with pytest.raises(TypeError, match="relu: out must be float32 like x, got float64"):
        F.relu(x, out=np.empty((2, 3)))
    ro = np.empty((2, 3), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        F.sigmoid(x, out=ro)
    with pytest.raises(ValueError, match="must be C-contiguous"):
        F.tanh(x, out=np.empty((3, 2), np.float32).T)


def test_reject_partial_aliasing():
    buf = np.ones(10, np.float32)
    with pytest.raises(ValueError, match="out overlaps x"):
        F.relu(buf[:8], out=buf[2:])
    x = np.ones((4, 3))
    with pytest.raises(ValueError, match="grad overlaps target"):
        F.mse_loss(x, x, grad=x)  # grad may be the input, but it is also the target here
    w = np.ones((3, 3))
    with pytest.raises(ValueError, match="out overlaps weight"):
        F.linear(np.ones((3, 3)), w, out=w)
    gw = np.zeros((3, 3))
    with pytest.raises(ValueError, match="grad_weight overlaps input"):
        F.linear_backward(np.ones((3, 3)), gw, w, grad_weight=gw)


def test_noncontiguous_inputs_are_copied(rng):
    x = rng.standard_normal((6, 8))
    xs = x[:, ::2]
    np.testing.assert_allclose(F.relu(xs), np.maximum(xs, 0))
    np.testing.assert_allclose(F.softmax(xs), ref_softmax(xs), rtol=1e-13)
    np.testing.assert_allclose(F.linear(xs, x[:3, :4]), xs @ x[:3, :4].T, rtol=1e-12)


def test_cross_entropy_bad_labels_and_shapes():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"target label 4 at index 1 is out of range for 4 classes "
                                         r"\(expected 0..3 or ignore_index -100\)"):
        F.cross_entropy(x, [0, 4, 1])
    with pytest.raises(ValueError, match="target label -1 at index 2"):
        F.cross_entropy(x, np.array([0, 1, -1], np.int8))
    with pytest.raises(ValueError, match=r"target must have shape \(3,\) for input of shape "
                                         r"\(3, 4\) .*, got \(2,\)"):
        F.cross_entropy(x, [0, 1])
    with pytest.raises(TypeError, match="holds class labels and must be integers"):
        F.cross_entropy(x, np.array([0.0, 1.0, 2.0], np.float32))
    with pytest.raises(ValueError, match=r"probability targets must have the input's shape "
                                         r"\(3, 4\), got \(3, 5\)"):
        F.cross_entropy(x, np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"for an input of shape \(4,\) the target must be one "
                                         r"class label"):
        F.cross_entropy(np.zeros(4, np.float32), [1])
    with pytest.raises(ValueError, match=r"input must have shape \(N, C\) or \(N, C, d1, ...\)"):
        F.cross_entropy(np.zeros((), np.float32), 1)
    with pytest.raises(ValueError, match="input is empty"):
        F.cross_entropy(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        F.cross_entropy(x, [0, 1, 2], "avg")


def test_bad_dropout_and_linear_arguments():
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\), got 1.0"):
        F.dropout(np.ones(3), 1.0)
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\), got -0.1"):
        F.dropout(np.ones(3), -0.1)
    with pytest.raises(ValueError, match=r"linear: input has 5 features but weight is \(4, 3\)"):
        F.linear(np.ones((2, 5)), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(4,\), got \(3,\)"):
        F.linear(np.ones((2, 3)), np.ones((4, 3)), np.ones(3))
    with pytest.raises(TypeError, match="linear: input is float32 but weight is float64"):
        F.linear(np.ones((2, 3), np.float32), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"mse_loss: target must have the input's shape \(3,\)"):
        F.mse_loss(np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match="activation code must be 0..3"):
        K.activation_forward(np.ones(2), np.ones(2), 7)


@pytest.mark.parametrize("fn", [F.dropout, F.dropout_backward, F.dropout2d,
                                F.dropout2d_backward])
def test_dropout_identity_paths_check_dtype_and_write_out(fn):
    """p == 0 (or eval) returns the input unchanged: complex/int arrays are still refused,
    and an out= array receives the result instead of being left unwritten."""
    x = np.arange(24.0).reshape(1, 2, 3, 4)
    kw = dict(seed=1) if "backward" in fn.__name__ else {}
    with pytest.raises(TypeError, match="float32 or float64"):
        fn(x.astype(np.complex64), 0.0, **kw)
    with pytest.raises(TypeError, match="float32 or float64"):
        fn(x.astype(np.int32), 0.0, **kw)
    out = np.full_like(x, np.nan)
    assert fn(x, 0.0, out=out, **kw) is out
    np.testing.assert_array_equal(out, x)
    with pytest.raises(ValueError, match="out must have the input's shape"):
        fn(x, 0.0, out=np.zeros(5), **kw)
    ro = np.zeros_like(x)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fn(x, 0.0, out=ro, **kw)
    if "backward" not in fn.__name__:
        out = np.zeros_like(x)
        np.testing.assert_array_equal(fn(x, 0.5, training=False, out=out), x)
        np.testing.assert_array_equal(out, x)


def test_empty_arrays_are_fine_for_elementwise():
    x = np.zeros((0, 5), np.float32)
    assert F.relu(x).shape == (0, 5)
    assert F.softmax(x).shape == (0, 5)
    assert F.linear(x, np.ones((3, 5), np.float32)).shape == (0, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (7, 17), (129, 10), (3, 1)])
def test_argmax_matches_numpy_with_ties_and_nan(dtype, shape):
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 3, size=shape).astype(dtype)  # many ties: first maximum wins
    if shape[0] > 2 and shape[1] > 2:
        x[1, 2] = np.nan  # NaN counts as the maximum, as numpy.argmax
        x[2, 0] = np.inf
    np.testing.assert_array_equal(F.argmax(x), np.argmax(x, axis=1))


def test_argmax_bad_input():
    with pytest.raises(ValueError, match=r"argmax: x must be 2-D"):
        F.argmax(np.ones(3, np.float32))
    with pytest.raises(TypeError, match=r"argmax: out must be int64"):
        F.argmax(np.ones((2, 3), np.float32), out=np.empty(2, np.int32))
    with pytest.raises(ValueError, match=r"argmax: out must have shape \(2,\)"):
        F.argmax(np.ones((2, 3), np.float32), out=np.empty(3, np.int64))
