"""LeakyReLU, ELU, GELU and Softplus: kernels against float64 NumPy/SciPy references on
awkward shapes and extreme values, on every ISA the CPU runs; float64 gradient checks
of the layers; thread and ISA determinism; bad input; PyTorch cross-checks when torch
is importable (never required)."""
import numpy as np
import pytest
from scipy.special import erfc, expit

import neuropil
from neuropil import functional as F
from neuropil import nn
from neuropil.testing import gradcheck

ISAS = ["generic", "avx2", "avx512"]
AVAILABLE = neuropil.show_config(mode="dicts")["available_isas"]


def _use(isa):
    if isa not in AVAILABLE:
        pytest.skip(f"{isa} kernels not available on this CPU")
    neuropil.set_isa(isa)
DTYPES = [np.float32, np.float64]
SHAPES = [(1,), (7,), (17,), (1, 1), (3, 17), (7, 129), (2, 3, 5, 7), (1000, 33)]
K_TANH = np.sqrt(2 / np.pi)


# --- float64 references ----------------------------------------------------------

def ref_leaky(x, slope):
    return np.where(x > 0, x, slope * x), np.where(x > 0, 1.0, slope)


def ref_elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(x)), np.where(x > 0, 1.0, alpha * np.exp(x))


def ref_gelu(x):
    cdf = 0.5 * erfc(-x / np.sqrt(2))
    return x * cdf, cdf + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


def ref_gelu_tanh(x):
    # 0.5 x (1 + tanh(u)) written as x * sigmoid(2u): the same function, without the
    # cancellation that would make the float64 reference itself 0 in the left tail.
    with np.errstate(over="ignore"):
        u2 = 2 * K_TANH * (x + 0.044715 * x ** 3)
        s = expit(u2)
        return x * s, s + x * s * (1 - s) * 2 * K_TANH * (1 + 3 * 0.044715 * x * x)


def ref_softplus(x, beta, threshold):
    z = beta * x
    with np.errstate(under="ignore"):
            return (np.where(z > threshold, x, np.logaddexp(0, z) / beta),
                np.where(z > threshold, 1.0, expit(z)))


# name -> (functional forward, functional backward, reference, hyper-parameter sets)
CASES = {
    "leaky_relu": (F.leaky_relu, F.leaky_relu_backward, ref_leaky, [0.01, 0.0, 0.2, 1.5, -0.3]),
    "elu": (F.elu, F.elu_backward, ref_elu, [1.0, 0.3, 2.0, -0.5]),
    "gelu": (lambda x, **kw: F.gelu(x, **kw), lambda x, g, **kw: F.gelu_backward(x, g, **kw),
             lambda x: ref_gelu(x), [None]),
    "gelu_tanh": (lambda x, **kw: F.gelu(x, "tanh", **kw),
                  lambda x, g, **kw: F.gelu_backward(x, g, "tanh", **kw),
                  lambda x: ref_gelu_tanh(x), [None]),
    "softplus": (F.softplus, F.softplus_backward, ref_softplus,
                 [(1.0, 20.0), (2.0, 3.0), (0.5, 20.0), (-1.5, 1.0), (1.0, np.inf)]),
}


def _args(p):
    return () if p is None else (p if isinstance(p, tuple) else (p,))


def _tolerances(name, x64, dtype, p):
    """Per-element relative (forward, backward) tolerances: float32 in units of its ulp
    (2^-23 relative at worst), float64 near its rounding."""
    if dtype == np.float64:
        # libm's erfc(x / sqrt 2) is as exact as its rounded argument: ~x^2 eps relative
        return (5e-14, 5e-14) if name.startswith("gelu") else (1e-14, 1e-14)
    ulp = 2.0 ** -23
    if name == "gelu_tanh":
        # rounding u = sqrt(2/pi)(x + 0.044715 x^3) to float32 moves sigmoid(2u) by about
        # |2u| ulp: the tails' own conditioning
        u2 = np.abs(2 * K_TANH * (x64 + 0.044715 * x64 ** 3))
        return 4 * ulp * (1 + u2), 4 * ulp * (1 + u2)
    if name == "softplus":  # likewise rounding z = beta x moves e^z by |z| ulp
        z = np.abs(p[0] * x64)
        return ulp * (3 + z), ulp * (3 + z)
    return {"leaky_relu": (ulp, ulp), "elu": (2 * ulp, 2 * ulp),
            "gelu": (7 * ulp, 6 * ulp)}[name]


def _assert_within(got, want, rel, what):
    got = got.astype(np.float64)
    err = np.abs(got - want)
    bound = rel * np.maximum(np.abs(want), 1e-300) + 1e-38
    bad = ~(err <= bound) & ~(np.isnan(got) & np.isnan(want))
    if bad.any():
        i = np.flatnonzero(bad.reshape(-1))[0]
        raise AssertionError(f"{what}: {int(bad.sum())} element(s) off; first at flat index {i}: "
                             f"got {got.reshape(-1)[i]!r}, want {want.reshape(-1)[i]!r}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_reference_on_awkward_shapes(isa, dtype, name, isa_path, rng):
    _use(isa)
    fwd, bwd, ref, params = CASES[name]
    for shape in SHAPES:
        for p in params:
            x = (rng.standard_normal(shape) * 4).astype(dtype)
            dy = rng.standard_normal(shape).astype(dtype)
            x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
            y_ref, d_ref = ref(x64, *_args(p))
            d_scale = np.abs(d_ref)
            if name.startswith("gelu"):
                # GELU's derivative crosses 0 near x = -0.75: measure against its terms' size
                if name == "gelu":
                    cdf, pdf = 0.5 * erfc(-x64 / np.sqrt(2)), np.exp(-x64 ** 2 / 2) / np.sqrt(2 * np.pi)
                else:
                    cdf = expit(2 * K_TANH * (x64 + 0.044715 * x64 ** 3))
                    pdf = cdf * (1 - cdf) * 2 * K_TANH * (1 + 3 * 0.044715 * x64 ** 2)
                d_scale = np.abs(cdf) + np.abs(x64 * pdf)
            rel_y, rel_d = _tolerances(name, x64, dtype, _args(p))
            y = fwd(x, *_args(p))
            assert y.dtype == dtype and y.shape == shape
            _assert_within(y, y_ref, rel_y, f"{name}{_args(p)} forward {shape}")
            dx = bwd(x, dy, *_args(p))
            assert dx.dtype == dtype and dx.shape == shape
            err = np.abs(dx.astype(np.float64) - d_ref * dy64)
            # + 0.5 ulp for the product with dy
            assert np.all(err <= (rel_d + np.finfo(dtype).eps / 2) * d_scale * np.abs(dy64)
                          + 1e-38), \
                f"{name}{_args(p)} backward {shape}: worst {err.max()}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.filterwarnings("ignore:invalid value")  # inf * 0 in the NumPy reference
def test_leaky_relu_float32_is_exact(dtype):
    x = np.array([-3.0, -1e-40, -0.0, 0.0, 1e-40, 2.5, -1e30, np.inf, -np.inf], dtype)
    for slope in (0.01, 0.0, 1.7, -0.4):
        s = np.asarray(slope, dtype)
        np.testing.assert_array_equal(F.leaky_relu(x, slope), np.where(x > 0, x, x * s))
        dy = np.linspace(-2, 2, x.size).astype(dtype)
        np.testing.assert_array_equal(F.leaky_relu_backward(x, dy, slope),
                                      np.where(x > 0, dy, dy * s))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_tails_keep_relative_accuracy(isa, dtype, isa_path):
    """The normal CDF is not 1 + erf (which cancels to 0): Phi(-12) = 1.8e-33 is kept."""
    _use(isa)
    x = -np.geomspace(3, 13, 300).astype(dtype)
    y_ref, d_ref = ref_gelu(x.astype(np.float64))
    rel = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(F.gelu(x), y_ref, rtol=rel, atol=0)
    np.testing.assert_allclose(F.gelu_backward(x, np.ones_like(x)), d_ref, rtol=2 * rel, atol=0)
    far = np.array([-14.5, -20.0, -1e4, -3e38], dtype)  # below the float32 subnormals
    if dtype == np.float32:
        y = F.gelu(far)
        assert np.all(y == 0) and np.all(np.signbit(y))
    big = np.array([13.0, 100.0, 1e4, 3e38], dtype)
    np.testing.assert_array_equal(F.gelu(big), big)
    np.testing.assert_array_equal(F.gelu_backward(big, np.ones_like(big)), np.ones_like(big))
    # tanh form: tiny but not 0 in the left tail (PyTorch's 1 + tanh form gives 0 there)
    xt = np.array([-5.0, -8.0], dtype)
    yt, _ = ref_gelu_tanh(xt.astype(np.float64))
    np.testing.assert_allclose(F.gelu(xt, "tanh"), yt, rtol=2e-5 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_magnitudes_stay_finite(dtype):
    x = np.array([-1e4, -100.0, -30.0, 30.0, 100.0, 1e4], dtype)
    with np.errstate(under="ignore"):
        elu_grad = 1.5 * np.exp(x[:2].astype(np.float64))
    with np.errstate(all="raise"):
        for thr in (20.0, 1e6, np.inf):  # a huge threshold must not overflow exp
            for beta in (1.0, 3.0):
                y = F.softplus(x, beta, thr)
                assert np.all(np.isfinite(y))
                np.testing.assert_allclose(y, ref_softplus(x.astype(np.float64), beta, thr)[0],
                                           rtol=1e-6, atol=1e-30)
                d = F.softplus_backward(x, np.ones_like(x), beta, thr)
                np.testing.assert_allclose(d, ref_softplus(x.astype(np.float64), beta, thr)[1],
                                           rtol=1e-6, atol=1e-43)  # float32 subnormals
        assert F.softplus(x)[0] == 0 and F.softplus(x)[-1] == 1e4
        e = F.elu(x, 1.5)
        np.testing.assert_array_equal(e[:2], np.array([-1.5, -1.5], dtype))
        np.testing.assert_allclose(F.elu_backward(x, np.ones_like(x), 1.5)[:2],
                                   elu_grad, rtol=1e-6, atol=1e-44)
        np.testing.assert_array_equal(F.leaky_relu(x, 0.0)[:3], [0, 0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_elu_is_exact_near_zero_and_at_zero(dtype):
    x = -np.geomspace(1e-30, 0.3, 50).astype(dtype)
    np.testing.assert_allclose(F.elu(x, 2.0), 2.0 * np.expm1(x.astype(np.float64)),
                               rtol=3e-7 if dtype == np.float32 else 1e-15)
    z = np.zeros(3, dtype)
    dy = np.ones(3, dtype)
    # PyTorch: the x <= 0 branch at 0, so the gradient there is alpha
    np.testing.assert_array_equal(F.elu_backward(z, dy, 2.0), [2.0] * 3)
    np.testing.assert_array_equal(F.elu_backward(F.elu(z, 2.0), dy, 2.0, is_result=True), [2.0] * 3)
    np.testing.assert_array_equal(F.leaky_relu_backward(z, dy, 0.1), np.full(3, 0.1, dtype))
    np.testing.assert_array_equal(F.gelu_backward(z, dy), [0.5] * 3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elu_backward_from_output_matches_from_input(rng, dtype):
    x = (rng.standard_normal(1000) * 3).astype(dtype)
    dy = rng.standard_normal(1000).astype(dtype)
    for alpha in (0.0, 0.5, 1.0, 3.0):
        from_x = F.elu_backward(x, dy, alpha)
        from_y = F.elu_backward(F.elu(x, alpha), dy, alpha, is_result=True)
        # y + alpha = alpha e^x up to the rounding of y (absolute, about alpha ulp(1))
        np.testing.assert_allclose(from_y, from_x, rtol=1e-6 if dtype == np.float32 else 1e-14,
                                   atol=4 * alpha * np.finfo(dtype).eps * np.abs(dy).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_propagates(dtype):
    x = np.array([np.nan, 1.0, -1.0, 0.5], dtype)
    dy = np.ones_like(x)
    for name, (fwd, bwd, _, params) in CASES.items():
        for p in params:
            y = fwd(x, *_args(p))
            assert np.isnan(y[0]) and np.all(np.isfinite(y[1:])), name
            d = bwd(x, dy, *_args(p))
            if name != "leaky_relu":  # PyTorch's rule reads only x > 0: slope * dy at NaN
                assert np.isnan(d[0]), name
            assert np.all(np.isfinite(d[1:])), name
            dn = bwd(np.ones_like(x), np.array([np.nan, 1, 1, 1], dtype), *_args(p))
            assert np.isnan(dn[0]), name
    inf = np.array([np.inf, -np.inf], dtype)
    np.testing.assert_array_equal(F.gelu(inf)[:1], [np.inf])
    assert np.isnan(F.gelu(inf)[1])  # -inf * Phi(-inf) = -inf * 0, as PyTorch
    np.testing.assert_array_equal(F.elu(inf, 1.0), [np.inf, -1.0])
    np.testing.assert_array_equal(F.softplus(inf), [np.inf, 0.0])


def _all_outputs(x, dy):
    out = []
    for name, (fwd, bwd, _, params) in sorted(CASES.items()):
        for p in params:
            out.append(fwd(x, *_args(p)))
            out.append(bwd(x, dy, *_args(p)))
    out.append(F.elu_backward(F.elu(x, 0.7), dy, 0.7, is_result=True))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_for_any_thread_count(rng, threads, dtype):
    x = (rng.standard_normal(300_001) * 5).astype(dtype)  # large enough to use 2 threads
    dy = rng.standard_normal(x.size).astype(dtype)
    neuropil.set_num_threads(1)
    one = _all_outputs(x, dy)
    neuropil.set_num_threads(2)
    two = _all_outputs(x, dy)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_isa_agrees(rng, isa_path, dtype):
    """float64 runs libm on every ISA: the same bits. The float32 AVX2/AVX-512 builds
    contract into FMAs: within a few ulp of the portable build (each is checked against
    the float64 reference above), and identical at the special values."""
    if len(AVAILABLE) < 2:
        pytest.skip("only the portable kernels run on this CPU")
    x = (rng.standard_normal(10_007) * 6).astype(dtype)
    special = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-41, -1e-41, 1e30, -1e30, 100.0, -100.0]
    x[:len(special)] = special
    dy = rng.standard_normal(x.size).astype(dtype)
    neuropil.set_isa("generic")
    want = _all_outputs(x, dy)
    for isa in AVAILABLE[1:]:
        neuropil.set_isa(isa)
        for a, b in zip(want, _all_outputs(x, dy)):
            if dtype == np.float64:
                np.testing.assert_array_equal(b, a)
                continue
            np.testing.assert_array_equal(b[:len(special)], a[:len(special)])
            np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6)


def test_in_place_and_out():
    x = np.array([-2.0, 3.0], np.float32)
    assert F.leaky_relu(x, 0.5, inplace=True) is x
    np.testing.assert_array_equal(x, [-1.0, 3.0])
    out = np.empty(2, np.float32)
    assert F.elu(x, out=out) is out
    assert F.elu(x, inplace=True) is x
    dy = np.ones(2, np.float32)
    assert F.gelu_backward(x, dy, out=dy) is dy  # the gradient may overwrite grad_out
    with pytest.raises(ValueError, match="either inplace=True or out="):
        F.elu(x, inplace=True, out=out)


# --- layers ----------------------------------------------------------------------

LAYERS = [nn.LeakyReLU(), nn.LeakyReLU(0.0), nn.LeakyReLU(2.5), nn.LeakyReLU(-0.4),
          nn.ELU(), nn.ELU(0.2), nn.ELU(0.0), nn.ELU(-1.3), nn.GELU(), nn.GELU("tanh"),
          nn.Softplus(), nn.Softplus(2.0, 3.0), nn.Softplus(-0.5, 1.0)]


@pytest.mark.parametrize("layer", LAYERS, ids=repr)
@pytest.mark.parametrize("shape", [(1, 1), (7, 17), (2, 3, 4)])
def test_layer_gradcheck_float64(layer, shape, rng):
    x = rng.standard_normal(shape) * 3
    x[np.abs(x) < 1e-3] = 0.5  # stay off the kinks (LeakyReLU, ELU at 0)
    if isinstance(layer, nn.Softplus):  # and off the threshold's jump
        z = layer.beta * x
        x[np.abs(z - layer.threshold) < 1e-3] += 0.1
    gradcheck(layer.train(), x, atol=1e-7)
    gradcheck(layer.eval(), x, atol=1e-7)
    layer.train()


@pytest.mark.parametrize("layer", LAYERS, ids=repr)
def test_layer_protocol(layer, rng):
    assert layer.parameters() == [] and len(layer.state_dict()) == 0
    assert type(layer)._reentrant is True
    x = rng.standard_normal((4, 5)).astype(np.float32)
    layer.train()
    y1 = layer(x)
    assert layer(x) is y1  # training mode: the layer's own buffer
    g = rng.standard_normal((4, 5)).astype(np.float32)
    g_copy = g.copy()
    d1 = layer.backward(g)
    np.testing.assert_array_equal(g, g_copy)  # grad_out never modified
    assert layer.backward(g) is d1
    layer.eval()
    y2 = layer(x)
    assert y2 is not y1 and layer(x) is not y2
    np.testing.assert_array_equal(y1, y2)
    layer.train()


def test_layer_reprs_and_arguments():
    assert repr(nn.LeakyReLU(0.2, inplace=True)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.ELU(alpha=0.5)) == "ELU(alpha=0.5)"
    assert repr(nn.GELU(approximate="tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.Softplus(beta=2, threshold=10)) == "Softplus(beta=2.0, threshold=10.0)"
    x = np.array([[-1.0, 2.0]], np.float32)
    layer = nn.LeakyReLU(0.5, inplace=True)  # accepted for PyTorch code; x stays untouched
    np.testing.assert_array_equal(layer(x), [[-0.5, 2.0]])
    np.testing.assert_array_equal(x, [[-1.0, 2.0]])


def test_bad_arguments():
    with pytest.raises(ValueError, match="negative_slope must be a finite number, got nan"):
        nn.LeakyReLU(float("nan"))
    with pytest.raises(ValueError, match="alpha must be a finite number, got 'x'"):
        nn.ELU("x")
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'erf'"):
        nn.GELU("erf")
    with pytest.raises(ValueError, match="Softplus: beta must be non-zero"):
        nn.Softplus(0.0)
    with pytest.raises(ValueError, match="threshold must be a number"):
        nn.Softplus(1.0, float("nan"))
    with pytest.raises(ValueError, match="softplus: beta must be non-zero"):
        F.softplus(np.ones(2), 0.0)
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh'"):
        F.gelu(np.ones(2), "fast")
    with pytest.raises(ValueError, match="elu: alpha must be a finite number"):
        F.elu(np.ones(2), np.inf)
    with pytest.raises(ValueError, match="from the output needs alpha >= 0"):
        F.elu_backward(np.ones(2), np.ones(2), -1.0, is_result=True)
    for fn in (F.leaky_relu, F.elu, F.gelu, F.softplus):
        with pytest.raises(TypeError, match="x must be float32 or float64, got int32"):
            fn(np.ones(3, np.int32))
        with pytest.raises(ValueError, match=r"out must have shape \(3,\), got \(4,\)"):
            fn(np.ones(3), out=np.empty(4))
        with pytest.raises(TypeError, match="out must be float64 like x, got float32"):
            fn(np.ones(3), out=np.empty(3, np.float32))
        buf = np.ones(10)
        with pytest.raises(ValueError, match="out overlaps x"):
            fn(buf[:8], out=buf[2:])
    with pytest.raises(ValueError, match=r"grad_out must have shape \(3,\), got \(2,\)"):
        F.gelu_backward(np.ones(3), np.ones(2))
    with pytest.raises(TypeError, match="grad_out is float32"):
        F.softplus_backward(np.ones(3), np.ones(3, np.float32))
    layer = nn.GELU()
    with pytest.raises(RuntimeError, match="GELU: backward called before forward"):
        layer.backward(np.ones(3))
    layer(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"GELU: expected grad_out \(2, 3\) float64, got \(3, 2\)"):
        layer.backward(np.ones((3, 2)))
    with pytest.raises(TypeError, match="elu: x must be float32 or float64, got float16"):
        nn.ELU()(np.ones(3, np.float16))


def test_non_contiguous_and_list_inputs():
    x = np.arange(12.0).reshape(3, 4)[:, ::2] - 5
    np.testing.assert_array_equal(F.leaky_relu(x, 0.5), np.where(x > 0, x, 0.5 * x))
    np.testing.assert_array_equal(nn.LeakyReLU(0.5)(x), np.where(x > 0, x, 0.5 * x))
    np.testing.assert_allclose(F.softplus([0, 1]), np.log1p(np.exp([0.0, 1.0])), rtol=1e-15)
    assert F.gelu(np.zeros((0, 3), np.float32)).shape == (0, 3)


# --- PyTorch cross-check ------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_pytorch(rng, dtype):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((64, 33)) * 4).astype(dtype)
    x[0, :6] = [0.0, -0.0, 30.0, -30.0, 1e-3, -1e-3]
    g = rng.standard_normal(x.shape).astype(dtype)
    pairs = [(nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)), (nn.LeakyReLU(-0.7), torch.nn.LeakyReLU(-0.7)),
             (nn.ELU(1.3), torch.nn.ELU(1.3)), (nn.ELU(-0.5), torch.nn.ELU(-0.5)),
             (nn.GELU(), torch.nn.GELU()), (nn.GELU("tanh"), torch.nn.GELU("tanh")),
             (nn.Softplus(), torch.nn.Softplus()), (nn.Softplus(2.0, 5.0), torch.nn.Softplus(2.0, 5.0))]
    rtol, atol = (2e-6, 2e-6) if dtype == np.float32 else (1e-13, 1e-13)
    for ours, theirs in pairs:
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=rtol, atol=atol,
                                   err_msg=repr(ours))
        np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=repr(ours))


def test_bindings_never_copy():
    K = neuropil._kernels
    x = np.ones((4, 6), np.float32)
    with pytest.raises(ValueError, match="gelu: x must be C-contiguous"):
        K.gelu(x[:, ::2], np.empty((4, 3), np.float32), 0)
    with pytest.raises(ValueError, match="approximate code must be 0 \\(none\\) or 1 \\(tanh\\), got 2"):
        K.gelu(x, np.empty_like(x), 2)
    with pytest.raises(ValueError, match="softplus_backward: out is read-only"):
        ro = np.empty_like(x)
        ro.flags.writeable = False
        K.softplus_backward(x, x.copy(), ro, 1.0, 20.0)
    with pytest.raises(TypeError, match="leaky_relu: x must be float32 or float64, got >f4"):
        K.leaky_relu(x.astype(">f4"), np.empty_like(x), 0.1)


@pytest.mark.parametrize("act", [nn.LeakyReLU(0.2), nn.LeakyReLU(-0.3), nn.ELU(0.7), nn.ELU(-0.5),
                                 nn.GELU(), nn.GELU("tanh"), nn.Softplus(2.0, 5.0)], ids=repr)
def test_one_activation_called_twice_in_a_graph_model(act, rng):
    """Reentrant: the derived backward gets each call's own cached array."""
    class TwoCalls(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.act = nn.Linear(5, 6), nn.Linear(6, 4), act

        def forward(self, x):
            return self.act(self.fc2(self.act(self.fc1(x))))

    neuropil.manual_seed(1)
    model = TwoCalls().double()
    gradcheck(model, rng.standard_normal((3, 5)), atol=1e-7)
