"""Optimizers against hand computations of PyTorch's documented algorithms."""
import numpy as np
import pytest

import neuropil
from neuropil import functional as F
from neuropil import nn, optim

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


def sgd_reference(w, grads, lr, momentum=0.0, dampening=0.0, nesterov=False,
                  weight_decay=0.0, l1=0.0):
    """torch.optim.SGD's documented algorithm, written out in float64."""
    w = w.astype(np.float64).copy()
    b = None
    for g in grads:
        g = g.astype(np.float64) + weight_decay * w + l1 * np.sign(w)
        if momentum:
            b = g.copy() if b is None else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        w = w - lr * g
    return w


def adam_reference(w, grads, lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False):
    w = w.astype(np.float64).copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    vmax = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64) + weight_decay * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if amsgrad:
            vmax = np.maximum(vmax, v)
            vh = vmax
        else:
            vh = v
        denom = np.sqrt(vh) / np.sqrt(1 - b2 ** t) + eps
        w = w - lr / (1 - b1 ** t) * m / denom
    return w


def run(opt_cls, w0, grads, dtype, **kw):
    p = nn.Parameter(w0.astype(dtype))
    opt = opt_cls([p], **kw)
    for g in grads:
        opt.zero_grad()
        p.grad += g.astype(dtype)
        opt.step()
    return p


def make(shape, steps, seed=0):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(shape)
    w0.flat[0] = 0.0  # sign(0) = 0 path of l1
    return w0, [rng.standard_normal(shape) for _ in range(steps)]


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.8, nesterov=True),
    dict(lr=0.1, weight_decay=0.01),
    dict(lr=0.1, l1=0.02),
    dict(lr=0.02, momentum=0.5, nesterov=True, weight_decay=0.1, l1=0.05),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", SGD_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
@pytest.mark.parametrize("shape", [(1,), (7,), (17, 3), (40000,)])
def test_sgd_matches_pytorch_formula(dtype, kw, shape):
    w0, grads = make(shape, 5)
    p = run(optim.SGD, w0, grads, dtype, **kw)
    np.testing.assert_allclose(p.data, sgd_reference(w0, grads, **kw), **TOL[dtype])
    assert p.data.dtype == dtype


ADAM_CASES = [
    dict(lr=1e-2),
    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=1e-2, amsgrad=True),
    dict(lr=3e-3, betas=(0.5, 0.9), amsgrad=True, weight_decay=0.01),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", ADAM_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
@pytest.mark.parametrize("shape", [(1,), (17, 3), (40000,)])
def test_adam_matches_pytorch_formula(dtype, kw, shape):
    w0, grads = make(shape, 6, seed=1)
    p = run(optim.Adam, w0, grads, dtype, **kw)
    ref_kw = dict(kw)
    b1, b2 = ref_kw.pop("betas", (0.9, 0.999))
    np.testing.assert_allclose(p.data, adam_reference(w0, grads, b1=b1, b2=b2, **ref_kw),
                               **TOL[dtype])


def test_adam_first_step_moves_by_lr():
    # bias correction: the first step is lr * sign(g) (up to eps), whatever |g|
    p = nn.Parameter(np.zeros(3), dtype=np.float64)
    opt = optim.Adam([p], lr=0.01)
    p.grad[:] = [1e-3, -5.0, 200.0]
    opt.step()
    np.testing.assert_allclose(p.data, [-0.01, 0.01, -0.01], rtol=1e-4)


def test_amsgrad_differs_when_v_shrinks():
    w0 = np.zeros(1)
    grads = [np.array([10.0]), np.array([0.1]), np.array([0.1])]
    a = run(optim.Adam, w0, grads, np.float64, lr=0.1)
    b = run(optim.Adam, w0, grads, np.float64, lr=0.1, amsgrad=True)
    assert abs(a.data[0] - b.data[0]) > 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
def test_amsgrad_max_propagates_nan_on_every_isa(isa_path, dtype):
    """A NaN in max_exp_avg_sq (a corrupted state) spreads to the parameter as in
    PyTorch's torch.maximum; `vmax > v ? vmax : v` dropped it silently."""
    n = 37  # a vector body and a scalar tail
    for isa in neuropil.functional._k.available_isas():
        neuropil.set_isa(isa)
        for where in (0, 9, n - 1):
            w, g, m, v, vmax = (np.full(n, 0.5, dtype) for _ in range(5))
            vmax[where] = np.nan
            F.adam_update_(w, g, m, v, vmax, lr=0.01, step=1)
            assert np.isnan(w[where]) and np.isnan(vmax[where]), isa
            assert np.isfinite(np.delete(w, where)).all(), isa


def test_state_persists_and_multiple_params_and_groups():
    w0, grads = make((5,), 4)
    p1 = nn.Parameter(w0)
    p2 = nn.Parameter(w0 * 2, dtype=np.float64)
    opt = optim.SGD([{"params": [p1]}, {"params": [p2], "lr": 0.01}], lr=0.1, momentum=0.9)
    for g in grads:
        opt.zero_grad()
        p1.grad += g.astype(np.float32)
        p2.grad += g
        opt.step()
    np.testing.assert_allclose(p1.data, sgd_reference(w0, grads, 0.1, 0.9), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(p2.data, sgd_reference(w0 * 2, grads, 0.01, 0.9), rtol=1e-12)


def test_requires_grad_false_is_skipped_and_lr_settable():
    p = nn.Parameter(np.ones(3))
    q = nn.Parameter(np.ones(3), requires_grad=False)
    opt = optim.SGD([p, q], lr=0.1)
    p.grad[:] = 1
    q.grad[:] = 1
    opt.lr = 0.5
    assert opt.lr == 0.5 and all(g["lr"] == 0.5 for g in opt.param_groups)
    opt.step()
    np.testing.assert_allclose(p.data, 0.5)
    np.testing.assert_allclose(q.data, 1.0)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1


def test_zero_grad():
    p = nn.Parameter(np.ones(4))
    p.grad[:] = 3
    optim.Adam([p]).zero_grad()
    assert not p.grad.any()


def test_hand_written_objective_in_a_few_lines():
    # minimise |p - c|^2 by gradient descent on a bare Parameter
    c = np.array([1.5, -2.0, 0.25])
    p = nn.Parameter(np.zeros(3), dtype=np.float64)
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    for _ in range(200):
        opt.zero_grad()
        p.grad += 2 * (p.data - c)
        opt.step()
    np.testing.assert_allclose(p.data, c, atol=1e-8)


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam])
def test_state_dict_round_trip_continues_identically(cls):
    w0, grads = make((6,), 6)
    a = nn.Parameter(w0)
    opt_a = cls([a], lr=0.05, **({"momentum": 0.9} if cls is optim.SGD else {"amsgrad": True}))
    for g in grads[:3]:
        opt_a.zero_grad(); a.grad += g.astype(np.float32); opt_a.step()
    saved = opt_a.state_dict()
    b = nn.Parameter(a.data)
    opt_b = cls([b], lr=1.0)
    opt_b.load_state_dict(saved)
    assert opt_b.lr == 0.05
    for g in grads[3:]:
        for p, o in ((a, opt_a), (b, opt_b)):
            o.zero_grad(); p.grad += g.astype(np.float32); o.step()
    np.testing.assert_array_equal(a.data, b.data)
    # the saved state is a copy, not a view of the live buffers
    key = next(iter(saved["state"]))
    arr_name = "momentum_buffer" if cls is optim.SGD else "exp_avg"
    assert saved["state"][key][arr_name] is not opt_a.state[a][arr_name]


def test_load_state_dict_rejects_mismatch():
    p = nn.Parameter(np.ones(3))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad[:] = 1
    opt.step()
    sd = opt.state_dict()
    other = optim.SGD([nn.Parameter(np.ones(4))], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="expected shape"):
        other.load_state_dict(sd)
    two = optim.SGD([nn.Parameter(np.ones(3)), nn.Parameter(np.ones(3))], lr=0.1)
    with pytest.raises(ValueError, match="parameters saved"):
        two.load_state_dict(sd)


@pytest.mark.parametrize("make_opt, match", [
    (lambda p: optim.SGD(p, lr=-0.1), "lr"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), "weight_decay"),
    (lambda p: optim.SGD(p, lr=0.1, l1=-1), "l1"),
    (lambda p: optim.SGD(p, lr=float("nan")), "lr"),
    (lambda p: optim.Adam(p, lr=-1), "lr"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda p: optim.Adam(p, betas=0.9), "betas"),
    (lambda p: optim.Adam(p, eps=-1e-8), "eps"),
    (lambda p: optim.SGD(p, lr=0.1, bogus=1) if False else optim.SGD([{"params": p, "bogus": 1}], lr=0.1), "bogus"),
])
def test_bad_hyperparameters(make_opt, match):
    with pytest.raises(ValueError, match=match):
        make_opt([nn.Parameter(np.ones(2))])


def test_bad_params():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="Parameter"):
        optim.SGD([np.ones(3)], lr=0.1)
    with pytest.raises(TypeError, match="model.parameters"):
        optim.SGD(nn.Sequential(), lr=0.1)
    with pytest.raises(TypeError, match="list"):
        optim.SGD(nn.Parameter(np.ones(2)), lr=0.1)
    p = nn.Parameter(np.ones(2))
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="lr"):
        optim.SGD([p], lr="0.1")


# -- the fused kernels' argument checks ------------------------------------------

def test_kernel_argument_checks():
    w = np.zeros(4, np.float32)
    g = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="grad"):
        F.sgd_update_(w, g.astype(np.float64), lr=0.1)
    with pytest.raises(ValueError, match="grad must have shape"):
        F.sgd_update_(w, np.ones(5, np.float32), lr=0.1)
    with pytest.raises(ValueError, match="momentum_buf"):
        F.sgd_update_(w, g, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="overlaps"):
        F.sgd_update_(w, w, lr=0.1)
    ro = np.zeros(4, np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        F.sgd_update_(ro, g, lr=0.1)
    with pytest.raises(ValueError, match="C-contiguous"):
        F.sgd_update_(np.zeros(8, np.float32)[::2], g, lr=0.1)
    with pytest.raises(TypeError, match="float32 or float64"):
        F.sgd_update_(np.zeros(4, np.int64), np.ones(4, np.int64), lr=0.1)
    with pytest.raises(TypeError, match="ndarray"):
        F.sgd_update_([0.0, 0.0], g, lr=0.1)
    m, v = np.zeros(4, np.float32), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="step"):
        F.adam_update_(w, g, m, v, lr=0.1, step=0)
    with pytest.raises(ValueError, match="overlaps"):
        F.adam_update_(w, g, m, m, lr=0.1, step=1)
    with pytest.raises(ValueError, match="exp_avg_sq must have shape"):
        F.adam_update_(w, g, m, np.zeros(3, np.float32), lr=0.1, step=1)
    # nothing changed by the rejected calls
    assert not w.any() and not m.any()


def test_empty_parameter_is_fine():
    p = nn.Parameter(np.zeros((0, 3)))
    opt = optim.Adam([p], lr=0.1)
    opt.step()
    assert p.data.shape == (0, 3)


def test_update_is_bitwise_independent_of_thread_count(threads):
    w0, grads = make((100003,), 3)
    out = []
    for n in (1, 2):
        neuropil.set_num_threads(n)
        out.append(run(optim.Adam, w0, grads, np.float32, lr=0.01, amsgrad=True).data)
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt_cls, kw", [
    (optim.SGD, SGD_CASES[-1]), (optim.SGD, SGD_CASES[2]),
    (optim.Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True)), (optim.Adam, dict(lr=0.003)),
])
def test_update_is_bitwise_independent_of_the_kernel_isa(isa_path, dtype, opt_cls, kw):
    # The AVX2 build of the update loops (optim_avx2.cpp) is the portable code
    # compiled wider, without FP contraction: it must give the same bits.
    isas = [i for i in ("generic", "avx2") if i in neuropil.functional._k.available_isas()]
    if len(isas) < 2:
        pytest.skip("avx2 kernels not available on this CPU")
    w0, grads = make((40013,), 4)
    out = []
    for isa in isas:
        neuropil.set_isa(isa)
        out.append(run(opt_cls, w0, grads, dtype, **kw).data)
    assert out[0].tobytes() == out[1].tobytes()
    np.testing.assert_allclose(out[0], (sgd_reference if opt_cls is optim.SGD else _adam_ref)(
        w0, grads, **kw), **TOL[dtype])


def _adam_ref(w, grads, lr, weight_decay=0.0, amsgrad=False):
    return adam_reference(w, grads, lr, weight_decay=weight_decay, amsgrad=amsgrad)


# -- schedules ------------------------------------------------------------------

def test_step_lr_and_exponential_lr():
    opt = optim.SGD([nn.Parameter(np.ones(1))], lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(6):
        lrs.append(opt.lr)
        sched.step()
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    opt2 = optim.Adam([nn.Parameter(np.ones(1))], lr=0.1)
    sched2 = optim.ExponentialLR(opt2, gamma=0.9)
    sched2.step(); sched2.step()
    assert opt2.lr == pytest.approx(0.1 * 0.81)
    with pytest.raises(ValueError, match="step_size"):
        optim.StepLR(opt, step_size=0)


def test_reduce_lr_on_plateau_pytorch_semantics():
    opt = optim.SGD([nn.Parameter(np.ones(1))], lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    lrs = []
    for metric in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]:
        sched.step(metric)
        lrs.append(opt.lr)
    # 3 bad epochs (> patience) -> halve; 1 cooldown epoch; then 3 more bad epochs
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]
    for _ in range(10):
        sched.step(0.9)
    assert opt.lr == 0.2  # floored at min_lr
    # relative threshold: a tiny improvement does not count as better
    opt2 = optim.SGD([nn.Parameter(np.ones(1))], lr=1.0)
    s2 = optim.ReduceLROnPlateau(opt2, mode="max", patience=0, threshold=0.1)
    s2.step(1.0); s2.step(1.05)
    assert opt2.lr == pytest.approx(0.1)
    with pytest.raises(ValueError, match="factor"):
        optim.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode"):
        optim.ReduceLROnPlateau(opt, mode="up")


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1, l1=0.01),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.1),
    lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.1, amsgrad=True),
], ids=["sgd", "nesterov", "adam", "amsgrad"])
def test_frozen_parameters_are_left_alone(make):
    """requires_grad=False (what Module.requires_grad_(False) sets): no update, no weight
    decay, no state created or changed, even with a non-zero gradient; unfreezing
    resumes from the state it had."""
    rng = np.random.default_rng(0)
    live = nn.Parameter(rng.standard_normal((3, 4)))
    frozen = nn.Parameter(rng.standard_normal(5))
    opt = make([live, frozen])
    for _ in range(2):  # both train for a while: frozen gets state
        opt.zero_grad()
        live.grad[:] = rng.standard_normal(live.shape)
        frozen.grad[:] = rng.standard_normal(frozen.shape)
        opt.step()
    frozen.requires_grad = False
    data = frozen.data.copy()
    state = {k: (v.copy() if isinstance(v, np.ndarray) else v)
             for k, v in opt.state[frozen].items()}
    live_before = live.data.copy()
    for _ in range(3):
        opt.zero_grad()
        live.grad[:] = rng.standard_normal(live.shape)
        frozen.grad[:] = 1.0  # a stale gradient must not be applied either
        opt.step()
    np.testing.assert_array_equal(frozen.data, data)
    assert set(opt.state[frozen]) == set(state)
    for k, v in state.items():
        np.testing.assert_array_equal(opt.state[frozen][k], v)
    assert not np.array_equal(live.data, live_before)
    # never trained at all: no state is created
    fresh = nn.Parameter(np.ones(3), requires_grad=False)
    opt2 = make([fresh])
    fresh.grad[:] = 1.0
    opt2.step()
    assert fresh not in opt2.state and np.array_equal(fresh.data, np.ones(3))
