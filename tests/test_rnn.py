"""Recurrent kernels and layers against the NumPy time-loop reference (tests/rnn_reference.py),
finite differences, PyTorch's layout, thread-count determinism and bad input."""
import numpy as np
import pytest

import neuropil
from neuropil import nn
from neuropil import functional as F

import rnn_reference as ref

MODES = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
LAYERS = {"rnn_tanh": lambda *a, **k: nn.RNN(*a, **k),
          "rnn_relu": lambda *a, **k: nn.RNN(*a, nonlinearity="relu", **k),
          "lstm": lambda *a, **k: nn.LSTM(*a, **k),
          "gru": lambda *a, **k: nn.GRU(*a, **k)}
# (N, T, I, H): T = 1, batch 1, hidden 1, odd sizes, hidden past the 64-wide gate block.
SHAPES = [(1, 1, 1, 1), (1, 4, 3, 1), (3, 1, 2, 5), (3, 6, 4, 7), (2, 9, 1, 17), (4, 3, 5, 65),
          (8, 2, 3, 17), (13, 2, 2, 20)]  # batch 8, 13: the 4+4 and 4+3 row tails


def _weights(mode, I, H, rng, dtype, bias=True):
    G = ref.GATES[mode]
    k = 1 / np.sqrt(H)
    w = [rng.uniform(-k, k, s).astype(dtype) for s in ((G * H, I), (G * H, H))]
    b = [rng.uniform(-k, k, G * H).astype(dtype) for _ in range(2)] if bias else [None, None]
    return w + b


def _lengths(kind, N, T, rng):
    if kind == "none":
        return None
    L = rng.integers(0 if kind == "zero" else 1, T + 1, N)
    L[0] = T  # one full sequence
    return L


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("variant", ["plain", "reverse_h0_lengths", "timemajor_nobias_zero"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_matches_time_loop_reference(mode, shape, variant, dtype, rng):
    _check_kernel_against_reference(mode, shape, variant, dtype, rng)


# Every kernel family the CPU runs (gate kernels built per ISA, GEMM tiles per
# ISA): batch 13 and 32 (row blocks and tails of the step products), hidden
# 65 (past a 64-wide gate block), both precisions.
@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(3, 6, 4, 7), (4, 3, 5, 65), (13, 2, 2, 20), (32, 3, 9, 33)],
                         ids=str)
def test_kernel_matches_reference_on_every_isa(isa, isa_path, mode, shape, rng):
    if isa not in neuropil.functional._k.available_isas():
        pytest.skip(f"{isa} kernels not available on this CPU")
    neuropil.set_isa(isa)
    _check_kernel_against_reference(mode, shape, "reverse_h0_lengths", np.float32, rng)
    _check_kernel_against_reference(mode, shape, "plain", np.float64, rng)


def _check_kernel_against_reference(mode, shape, variant, dtype, rng):
    N, T, I, H = shape
    reverse = variant == "reverse_h0_lengths"
    batch_first = variant != "timemajor_nobias_zero"
    bias = variant != "timemajor_nobias_zero"
    w_ih, w_hh, b_ih, b_hh = _weights(mode, I, H, rng, dtype, bias)
    x = rng.standard_normal((N, T, I)).astype(dtype)
    h0 = rng.standard_normal((N, H)).astype(dtype) if variant != "plain" else None
    c0 = rng.standard_normal((N, H)).astype(dtype) if (mode == "lstm" and h0 is not None) else None
    L = _lengths({"plain": "none", "reverse_h0_lengths": "some",
                  "timemajor_nobias_zero": "zero"}[variant], N, T, rng)
    dy = rng.standard_normal((N, T, H)).astype(dtype)
    dh_n = rng.standard_normal((N, H)).astype(dtype)
    dc_n = rng.standard_normal((N, H)).astype(dtype) if mode == "lstm" else None
    exp = ref.direction(mode, x.astype(np.float64), w_ih.astype(np.float64),
                        w_hh.astype(np.float64), None if b_ih is None else b_ih.astype(np.float64),
                        None if b_hh is None else b_hh.astype(np.float64), h0, c0, L, reverse,
                        dy.astype(np.float64), dh_n.astype(np.float64),
                        None if dc_n is None else dc_n.astype(np.float64))

    tm = (lambda a: a) if batch_first else (lambda a: np.ascontiguousarray(a.transpose(1, 0, 2)))
    # y as a wider array with an offset column block, as a bidirectional layer uses it.
    y = np.full((N, T, 2 * H + 1) if batch_first else (T, N, 2 * H + 1), np.nan, dtype)
    y, h_n, c_n, cache = F.rnn_forward(mode, tm(x), w_ih, w_hh, b_ih, b_hh, h0, c0, L,
                                       batch_first=batch_first, reverse=reverse, y=y, y_col=H)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(tm(y)[:, :, H:2 * H], exp["y"], **tol)
    assert np.isnan(y[:, :, :H]).all() and np.isnan(y[:, :, 2 * H:]).all()
    np.testing.assert_allclose(h_n, exp["h_n"], **tol)
    if mode == "lstm":
        np.testing.assert_allclose(c_n, exp["c_n"], **tol)

    G = ref.GATES[mode]
    grads = {"dw_ih": np.full((G * H, I), 0.5, dtype), "dw_hh": np.full((G * H, H), 0.5, dtype)}
    if bias:
        grads["db_ih"] = np.full(G * H, 0.5, dtype)
        grads["db_hh"] = np.full(G * H, 0.5, dtype)
    dy_wide = np.zeros((N, T, 2 * H + 1), dtype)
    dy_wide[:, :, H:2 * H] = dy
    dx, dh0, dc0 = F.rnn_backward(mode, tm(x), w_ih, w_hh, cache, tm(dy_wide), dh_n, dc_n, L,
                                  dy_col=H, batch_first=batch_first, reverse=reverse, **grads)
    gtol = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else dict(rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(tm(dx), exp["dx"], **gtol)
    np.testing.assert_allclose(dh0, exp["dh0"], **gtol)
    if mode == "lstm":
        np.testing.assert_allclose(dc0, exp["dc0"], **gtol)
    for k, v in grads.items():  # accumulated on top of the 0.5 already there
        np.testing.assert_allclose(v - dtype(0.5), exp[k], err_msg=k, **gtol)


@pytest.mark.parametrize("mode", MODES)
def test_fast_float_activations_cover_saturation(mode, rng):
    """Large pre-activations (saturated gates) and values near 0 stay accurate in float32."""
    N, T, I, H = 4, 3, 2, 9
    w_ih, w_hh, b_ih, b_hh = _weights(mode, I, H, rng, np.float32)
    x = (rng.standard_normal((N, T, I)) * np.array([1e-4, 1e3])[None, None, :]).astype(np.float32)
    x[0, 0] = [100.0, -100.0]
    w_ih = (w_ih * 20).astype(np.float32)
    y, h_n, _, _ = F.rnn_forward(mode, x, w_ih, w_hh, b_ih, b_hh)
    exp = ref.direction(mode, x.astype(float), w_ih.astype(float), w_hh.astype(float),
                        b_ih.astype(float), b_hh.astype(float))
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, exp["y"], rtol=1e-4, atol=1e-6)


def _layer(mode, *a, **k):
    return LAYERS[mode](*a, **k)


def _to_ref(layer):
    return {k: v.astype(np.float64) for k, v in layer.state_dict().items()}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (1, True), (2, False), (3, True)])
@pytest.mark.parametrize("with_state,with_lengths", [(False, False), (True, True)])
def test_layer_matches_reference(mode, num_layers, bidirectional, with_state, with_lengths, rng):
    N, T, I, H = 3, 5, 4, 6
    D = 2 if bidirectional else 1
    layer = _layer(mode, I, H, num_layers=num_layers, bidirectional=bidirectional, rng=1).double()
    x = rng.standard_normal((N, T, I))
    L = np.array([5, 2, 4]) if with_lengths else None
    h0 = rng.standard_normal((num_layers * D, N, H)) if with_state else None
    c0 = rng.standard_normal((num_layers * D, N, H)) if with_state and mode == "lstm" else None
    state = None if h0 is None else ((h0, c0) if mode == "lstm" else h0)
    dy = rng.standard_normal((N, T, D * H))
    dh_n = rng.standard_normal((num_layers * D, N, H))
    dc_n = rng.standard_normal((num_layers * D, N, H)) if mode == "lstm" else None
    y_ref, hn_ref, cn_ref, g_ref = ref.layer(mode, x, _to_ref(layer), num_layers, bidirectional,
                                             h0, c0, L, dy=dy, dh_n=dh_n, dc_n=dc_n)
    layer.zero_grad()
    y = layer(x, state=state, lengths=L)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    h_n = layer.state[0] if mode == "lstm" else layer.state
    np.testing.assert_allclose(h_n, hn_ref, rtol=1e-10, atol=1e-12)
    if mode == "lstm":
        np.testing.assert_allclose(layer.state[1], cn_ref, rtol=1e-10, atol=1e-12)
    dx = layer.backward(dy, grad_state=(dh_n, dc_n) if mode == "lstm" else dh_n)
    np.testing.assert_allclose(dx, g_ref["x"], rtol=1e-9, atol=1e-11)
    gs = layer.grad_state
    np.testing.assert_allclose(gs[0] if mode == "lstm" else gs, g_ref["h0"], rtol=1e-9, atol=1e-11)
    if mode == "lstm":
        np.testing.assert_allclose(gs[1], g_ref["c0"], rtol=1e-9, atol=1e-11)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, g_ref[name], rtol=1e-9, atol=1e-11, err_msg=name)


def test_time_major_layer_equals_batch_first(rng):
    a = nn.GRU(3, 4, num_layers=2, bidirectional=True, rng=0)
    b = nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=False, rng=0)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    ya = a(x)
    yb = b(np.ascontiguousarray(x.transpose(1, 0, 2)))
    np.testing.assert_array_equal(ya, yb.transpose(1, 0, 2))
    np.testing.assert_array_equal(a.state, b.state)


# -- finite differences -------------------------------------------------------------
def numeric_grad(f, arr, eps=1e-6):
    g = np.zeros_like(arr)
    it = np.nditer(arr, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = arr[i]
        arr[i] = old + eps
        fp = f()
        arr[i] = old - eps
        fm = f()
        arr[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_layers,bidirectional,lengths", [(1, False, None), (2, True, [3, 1])])
def test_gradcheck_through_time(mode, num_layers, bidirectional, lengths, rng):
    """float64 central differences: input, initial state(s) and every weight."""
    N, T, I, H = 2, 3, 2, 3
    D = 2 if bidirectional else 1
    layer = _layer(mode, I, H, num_layers=num_layers, bidirectional=bidirectional, rng=3).double()
    x = rng.standard_normal((N, T, I))
    if mode == "rnn_relu":  # keep pre-activations away from the kink
        x += 0.5
    h0 = rng.standard_normal((num_layers * D, N, H)) * 0.5
    c0 = rng.standard_normal((num_layers * D, N, H)) * 0.5
    wy = rng.standard_normal((N, T, D * H))
    wh = rng.standard_normal((num_layers * D, N, H))
    wc = rng.standard_normal((num_layers * D, N, H))
    lstm = mode == "lstm"

    def loss():
        y = layer(x, state=(h0, c0) if lstm else h0, lengths=lengths)
        s = layer.state
        out = float((y * wy).sum() + ((s[0] if lstm else s) * wh).sum())
        return out + (float((s[1] * wc).sum()) if lstm else 0.0)

    loss()
    layer.zero_grad()
    dx = layer.backward(wy, grad_state=(wh, wc) if lstm else wh).copy()
    gs = layer.grad_state
    analytic = {"x": dx, "h0": (gs[0] if lstm else gs).copy()}
    if lstm:
        analytic["c0"] = gs[1].copy()
    for name, p in layer.named_parameters():
        analytic[name] = p.grad.copy()
    targets = {"x": x, "h0": h0, "c0": c0, **{n: p.data for n, p in layer.named_parameters()}}
    for name, a in analytic.items():
        num = numeric_grad(loss, targets[name])
        np.testing.assert_allclose(a, num, rtol=1e-6, atol=1e-8, err_msg=name)


def test_embedding_gradcheck_and_reference(rng):
    emb = nn.Embedding(7, 3, rng=0).double()
    idx = np.array([[1, 6, 1], [0, 1, 3]])
    y = emb(idx)
    np.testing.assert_array_equal(y, emb.weight.data[idx])
    wy = rng.standard_normal(y.shape)
    emb.zero_grad()
    assert emb.backward(wy) is None
    num = numeric_grad(lambda: float((emb(idx) * wy).sum()), emb.weight.data)
    np.testing.assert_allclose(emb.weight.grad, num, rtol=1e-6, atol=1e-9)
    expect = np.zeros((7, 3))
    np.add.at(expect, idx.ravel(), wy.reshape(-1, 3))
    np.testing.assert_allclose(emb.weight.grad, expect, rtol=1e-12)


# -- PyTorch layout ------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_state_dict_names_shapes_and_init_follow_pytorch(mode):
    layer = _layer(mode, 5, 4, num_layers=2, bidirectional=True, rng=0)
    G = ref.GATES[mode]
    names = []
    for l in range(2):
        for sfx in ("", "_reverse"):
            names += [f"weight_ih_l{l}{sfx}", f"weight_hh_l{l}{sfx}", f"bias_ih_l{l}{sfx}",
                      f"bias_hh_l{l}{sfx}"]
    sd = layer.state_dict()
    assert list(sd) == names
    assert sd["weight_ih_l0"].shape == (G * 4, 5)
    assert sd["weight_ih_l1"].shape == (G * 4, 8)
    assert sd["weight_hh_l1_reverse"].shape == (G * 4, 4)
    assert sd["bias_hh_l0"].shape == (G * 4,)
    allw = np.concatenate([v.ravel() for v in sd.values()])
    assert allw.dtype == np.float32 and np.abs(allw).max() <= 0.5 and np.abs(allw).max() > 0.4
    no_bias = _layer(mode, 5, 4, bias=False, rng=0)
    assert list(no_bias.state_dict()) == ["weight_ih_l0", "weight_hh_l0"]


@pytest.mark.parametrize("mode", MODES)
def test_matches_pytorch_when_installed(mode, rng):
    torch = pytest.importorskip("torch")
    N, T, I, H = 3, 6, 4, 5
    layer = _layer(mode, I, H, num_layers=2, bidirectional=True, rng=0)
    cls = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "lstm": torch.nn.LSTM,
           "gru": torch.nn.GRU}[mode]
    kw = {"nonlinearity": mode[4:]} if mode.startswith("rnn") else {}
    tl = cls(I, H, num_layers=2, bidirectional=True, batch_first=True, **kw)
    tl.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x = rng.standard_normal((N, T, I)).astype(np.float32)
    y_t, s_t = tl(torch.from_numpy(x))
    y = layer(x)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-4, atol=1e-5)
    h_t = s_t[0] if mode == "lstm" else s_t
    np.testing.assert_allclose(layer.state[0] if mode == "lstm" else layer.state,
                               h_t.detach().numpy(), rtol=1e-4, atol=1e-5)


# -- variable lengths -------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_padding_changes_nothing(mode, rng):
    N, T, I, H = 3, 6, 2, 5
    layer = _layer(mode, I, H, num_layers=2, bidirectional=True, rng=4).double()
    L = np.array([6, 3, 1])
    x = rng.standard_normal((N, T, I))
    dy = rng.standard_normal((N, T, 2 * H))
    results = []
    for trial in range(2):
        xp = x.copy()
        if trial:  # different padding content and different output gradients there
            for n, l in enumerate(L):
                xp[n, l:] = rng.standard_normal((T - l, I)) * 10
        dyp = dy.copy()
        if trial:
            for n, l in enumerate(L):
                dyp[n, l:] = 99.0
        layer.zero_grad()
        y = layer(xp, lengths=L).copy()
        state = [s.copy() for s in (layer.state if mode == "lstm" else (layer.state,))]
        dx = layer.backward(dyp).copy()
        grads = [p.grad.copy() for p in layer.parameters()]
        results.append((y, state, dx, grads))
    (y0, s0, dx0, g0), (y1, s1, dx1, g1) = results
    np.testing.assert_array_equal(y0, y1)
    for n, l in enumerate(L):
        assert not y0[n, l:].any()
        assert not dx0[n, l:].any()
        # valid part of a short sequence equals running it alone, unpadded
        alone = layer(x[n:n + 1, :l]).copy()
        np.testing.assert_allclose(y0[n:n + 1, :l], alone, rtol=1e-12, atol=1e-14)
    for a, b in zip(s0, s1):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dx0, dx1)
    for a, b in zip(g0, g1):
        np.testing.assert_array_equal(a, b)


# -- determinism -------------------------------------------------------------------------
@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_bitwise_identical_for_1_and_2_threads(isa, isa_path, mode, threads, rng):
    # large enough for every parallel path: step products >= 8 MFLOP, gate kernels
    # >= 65536 elements, input copies and bias sums
    if isa not in neuropil.functional._k.available_isas():
        pytest.skip(f"{isa} kernels not available on this CPU")
    neuropil.set_isa(isa)
    N, T, I, H = 192, 3, 16, (384 if mode == "rnn_tanh" else 128)
    x = rng.standard_normal((N, T, I)).astype(np.float32)
    dy = rng.standard_normal((N, T, 2 * H)).astype(np.float32)
    L = rng.integers(1, T + 1, N)
    out = []
    for n in (1, 2):
        neuropil.set_num_threads(n)
        layer = _layer(mode, I, H, num_layers=2, bidirectional=True, rng=7)
        y = layer(x, lengths=L).copy()
        dx = layer.backward(dy).copy()
        out.append([y, dx] + [p.grad.copy() for p in layer.parameters()])
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


# -- gradient clipping ---------------------------------------------------------------------
def test_clip_grad_norm_pytorch_semantics(rng):
    from neuropil.nn.utils import clip_grad_norm_
    ps = [nn.Parameter(np.zeros(s, np.float32)) for s in ((3, 4), (5,), (9000,))]
    for p in ps:
        p.grad[...] = rng.standard_normal(p.shape)
    before = [p.grad.astype(np.float64) for p in ps]
    total = np.sqrt(sum((g ** 2).sum() for g in before))
    got = clip_grad_norm_(ps, 2.0)
    assert got == pytest.approx(total, rel=1e-6)
    for p, g in zip(ps, before):
        np.testing.assert_allclose(p.grad, g * 2.0 / (total + 1e-6), rtol=1e-5)
    new_total = np.sqrt(sum((p.grad.astype(np.float64) ** 2).sum() for p in ps))
    assert new_total == pytest.approx(2.0, rel=1e-5)
    # below the threshold nothing changes; inf-norm
    kept = [p.grad.copy() for p in ps]
    assert clip_grad_norm_(iter(ps), 10.0) == pytest.approx(2.0, rel=1e-5)
    for p, k in zip(ps, kept):
        np.testing.assert_array_equal(p.grad, k)
    m = max(np.abs(p.grad).max() for p in ps)
    assert clip_grad_norm_(ps, 1e9, norm_type=float("inf")) == pytest.approx(m)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(ps, -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_(ps, 1.0, norm_type=1)
    with pytest.raises(TypeError, match=r"parameters\[0\]"):
        clip_grad_norm_([np.zeros(3)], 1.0)


# -- bad input -----------------------------------------------------------------------------
def test_layer_rejects_bad_input():
    lstm = nn.LSTM(3, 4, num_layers=2)
    x = np.zeros((2, 5, 3), np.float32)
    with pytest.raises(ValueError, match=r"LSTM: x must have shape \(N, T, input_size\) with "
                                         r"input_size=3, got \(2, 5, 4\)"):
        lstm(np.zeros((2, 5, 4), np.float32))
    with pytest.raises(ValueError, match="input_size=3, got \\(5, 3\\)"):
        lstm(np.zeros((5, 3), np.float32))
    with pytest.raises(TypeError, match="x must be float32 like the parameters, got float64"):
        lstm(x.astype(np.float64))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        lstm([[[0.0] * 3]])
    bad = x.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lstm(bad)
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 5\]"):
        lstm(x, lengths=[6, 1])
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        lstm(x, lengths=[1, 2, 3])
    with pytest.raises(TypeError, match="lengths must be integers"):
        lstm(x, lengths=[1.5, 2.0])
    with pytest.raises(TypeError, match=r"tuple \(h, c\)"):
        lstm(x, state=np.zeros((2, 2, 4), np.float32))
    with pytest.raises(ValueError, match=r"state\[0\] \(h\) must have shape \(2, 2, 4\)"):
        lstm(x, state=(np.zeros((1, 2, 4), np.float32), None))
    gru = nn.GRU(3, 4)
    with pytest.raises(TypeError, match="single array h"):
        gru(x, state=(np.zeros((1, 2, 4), np.float32),))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.GRU(3, 4).backward(np.zeros((2, 5, 4), np.float32))
    gru(x)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 5, 4\)"):
        gru.backward(np.zeros((2, 5, 8), np.float32))
    for kwargs, msg in [(dict(hidden_size=0), "hidden_size must be a positive integer"),
                        (dict(num_layers=1.5), "num_layers must be a positive integer"),
                        (dict(dropout=1.0), r"dropout must be a number in \[0, 1\)"),
                        (dict(input_size=True), "input_size must be a positive integer")]:
        args = dict(input_size=3, hidden_size=4)
        args.update(kwargs)
        with pytest.raises(ValueError, match=msg):
            nn.GRU(**args)
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        nn.RNN(3, 4, dtype=np.int32)


def test_kernel_bindings_reject_bad_arguments():
    f32 = np.float32
    x = np.zeros((2, 3, 4), f32)
    w_ih, w_hh = np.zeros((20, 4), f32), np.zeros((20, 5), f32)
    with pytest.raises(ValueError, match="mode must be one of"):
        F.rnn_forward("lstmx", x, w_ih, w_hh)
    with pytest.raises(ValueError, match=r"w_ih must have shape \(20, 4\), got \(20, 3\)"):
        F.rnn_forward("lstm", x, np.zeros((20, 3), f32), w_hh)
    with pytest.raises(ValueError, match=r"w_hh must have shape \(15, 5\)"):
        F.rnn_forward("gru", x, np.zeros((15, 4), f32), w_hh)
    with pytest.raises(TypeError, match="w_ih is float64 but x is float32"):
        F.rnn_forward("lstm", x, w_ih.astype(np.float64), w_hh)
    with pytest.raises(TypeError, match="x must be float32 or float64, got int32"):
        F.rnn_forward("lstm", x.astype(np.int32), w_ih, w_hh)
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 5\)"):
        F.rnn_forward("lstm", x, w_ih, w_hh, h0=np.zeros((5, 2), f32))
    with pytest.raises(ValueError, match=r"c0/c_n are for mode 'lstm' only"):
        F.rnn_forward("gru", x, np.zeros((15, 4), f32), np.zeros((15, 5), f32),
                      c0=np.zeros((2, 5), f32))
    y = np.zeros((2, 3, 5), f32)
    y.flags.writeable = False
    with pytest.raises(ValueError, match="y is read-only"):
        F.rnn_forward("lstm", x, w_ih, w_hh, y=y)
    with pytest.raises(ValueError, match=r"y must have shape \(2, 3, >= 10\) for column offset 5"):
        F.rnn_forward("lstm", x, w_ih, w_hh, y=np.zeros((2, 3, 7), f32), y_col=5)
    hn = np.zeros((2, 5), f32)
    with pytest.raises(ValueError, match="h_n overlaps h0"):
        F.rnn_forward("lstm", x, w_ih, w_hh, h0=hn, h_n=hn)
    with pytest.raises(ValueError, match=r"index 9 at flat position 1 is outside \[0, 4\)"):
        F.embedding(np.zeros((4, 2), f32), [0, 9])
    with pytest.raises(TypeError, match="indices must be integers"):
        F.embedding(np.zeros((4, 2), f32), [0.0, 1.0])
    with pytest.raises(ValueError, match=r"Embedding: indices must lie in \[0, 4\)"):
        nn.Embedding(4, 2)(np.array([-1, 2]))


def test_empty_batch_and_zero_length_sequences(rng):
    gru = nn.GRU(2, 3, rng=0)
    y = gru(np.zeros((0, 4, 2), np.float32))
    assert y.shape == (0, 4, 3) and gru.state.shape == (1, 0, 3)
    assert gru.backward(np.zeros((0, 4, 3), np.float32)).shape == (0, 4, 2)
    h0 = rng.standard_normal((1, 2, 3)).astype(np.float32)
    y = gru(rng.standard_normal((2, 4, 2)).astype(np.float32), state=h0, lengths=[0, 4])
    assert not y[0].any()
    np.testing.assert_array_equal(gru.state[0, 0], h0[0, 0])


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_dropout_between_layers(mode, rng):
    layer = _layer(mode, 3, 4, num_layers=2, dropout=0.5, rng=0).double()
    x = rng.standard_normal((2, 5, 3))
    layer.eval()
    y_eval = layer(x).copy()
    plain = _layer(mode, 3, 4, num_layers=2, rng=0).double()
    np.testing.assert_array_equal(y_eval, plain.eval()(x))
    layer.train()
    assert not np.allclose(layer(x), y_eval)

    def fresh_rng():  # the same dropout seeds for every forward of the check
        layer._rng = np.random.default_rng(42)
    w = rng.standard_normal((2, 5, 4))

    def loss():
        fresh_rng()
        return float((layer(x) * w).sum())
    loss()
    layer.zero_grad()
    dx = layer.backward(w).copy()
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-9)
    p = layer.weight_ih_l0
    g = p.grad.copy()
    np.testing.assert_allclose(g, numeric_grad(loss, p.data), rtol=1e-6, atol=1e-9)


def test_embedding_and_norm_bitwise_for_1_and_2_threads(threads, rng):
    idx = rng.integers(0, 50, 4000)  # many repeats: the scatter-add order matters
    dout = rng.standard_normal((4000, 24)).astype(np.float32)
    x = rng.standard_normal(100003).astype(np.float32)
    res = []
    for n in (1, 2):
        neuropil.set_num_threads(n)
        dw = np.zeros((50, 24), np.float32)
        F.embedding_backward(dout, idx, dw)
        res.append((dw, F.embedding(dw, idx), F.sum_squares(x)))
    np.testing.assert_array_equal(res[0][0], res[1][0])
    np.testing.assert_array_equal(res[0][1], res[1][1])
    assert res[0][2] == res[1][2]
    np.testing.assert_allclose(res[0][2], float((x.astype(np.float64) ** 2).sum()), rtol=1e-12)
