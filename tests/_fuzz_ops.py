"""Fuzz table (see _fuzz_base.py): GEMM, dense layers and activations, softmax,
dropout, optimizer updates, convolution and pooling, recurrent layers, embeddings.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from neuropil import functional as F

import _conv_reference as CR
import rnn_reference as RR
from _fuzz_base import (FLOATS, HUGE, Case, _away_from_zero, _data, _f, _pair,  # noqa: F401
                        dims, need, op)

# -- GEMM and dense ----------------------------------------------------------------

@op("gemm")
@st.composite
def gemm_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    M, N, K = draw(st.integers(1, 40)), draw(st.integers(1, 40)), draw(st.integers(1, 40))
    ta, tb = draw(st.booleans()), draw(st.booleans())
    alpha = draw(st.sampled_from([1.0, 0.5, -2.0, 0.0]))
    beta = draw(st.sampled_from([0.0, 1.0, 0.25]))
    a = _data(draw, (K, M) if ta else (M, K), dt)
    b = _data(draw, (N, K) if tb else (K, N), dt)
    out = _data(draw, (M, N), dt) if beta else np.full((M, N), np.nan, dt)  # beta 0: never read
    args = dict(a=a, b=b, out=out, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta)

    def ref(g):
        need(g["a"].ndim == 2 and g["b"].ndim == 2 and g["out"].ndim == 2, "2-D operands")
        A = _f(g["a"]).T if g["trans_a"] else _f(g["a"])
        B = _f(g["b"]).T if g["trans_b"] else _f(g["b"])
        need(A.shape[1] == B.shape[0] and g["out"].shape == (A.shape[0], B.shape[1]))
        # alpha == 0: A and B are not read (BLAS), so a NaN there does not spread
        res = g["alpha"] * (A @ B) if g["alpha"] else np.zeros(g["out"].shape)
        return res + g["beta"] * _f(g["out"]) if g["beta"] else res

    return Case(lambda g: F.gemm(**g), ref, args, ("a", "b"), ("out",), dtype=dt)


@op("linear")
@st.composite
def linear_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    lead = draw(st.lists(dims, min_size=1, max_size=3))
    i, o = draw(dims), draw(dims)
    x, w = _data(draw, tuple(lead) + (i,), dt), _data(draw, (o, i), dt)
    b = _data(draw, (o,), dt) if draw(st.booleans()) else None
    args = dict(x=x, weight=w, bias=b)

    def ref(g):
        x, w, b = g["x"], g["weight"], g["bias"]
        need(w.ndim == 2 and x.ndim >= 1 and x.shape[-1] == w.shape[1])
        need(b is None or b.shape == (w.shape[0],))
        return _f(x) @ _f(w).T + (0 if b is None else _f(b))

    floats = ("x", "weight") + (("bias",) if b is not None else ())
    return Case(lambda g: F.linear(**g), ref, args, floats, dtype=dt)


@op("linear_backward")
@st.composite
def linear_backward_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    n, i, o = draw(dims), draw(dims), draw(dims)
    acc = draw(st.booleans())
    args = dict(grad_out=_data(draw, (n, o), dt), x=_data(draw, (n, i), dt),
                weight=_data(draw, (o, i), dt), grad_weight=_data(draw, (o, i), dt),
                grad_bias=_data(draw, (o,), dt), accumulate_weight=acc, accumulate_bias=acc)

    def call(g):
        gi = F.linear_backward(**g)
        return gi, g["grad_weight"], g["grad_bias"]

    def ref(g):
        go, x, w = g["grad_out"], g["x"], g["weight"]
        need(go.ndim == x.ndim == w.ndim == 2 and go.shape[0] == x.shape[0])
        need(go.shape[1] == w.shape[0] and x.shape[1] == w.shape[1])
        need(g["grad_weight"].shape == w.shape and g["grad_bias"].shape == (w.shape[0],))
        k = 1.0 if g["accumulate_weight"] else 0.0
        return (_f(go) @ _f(w), k * _f(g["grad_weight"]) + _f(go).T @ _f(x),
                k * _f(g["grad_bias"]) + _f(go).sum(0))

    return Case(call, ref, args, ("grad_out", "x", "weight"), ("grad_weight", "grad_bias"),
                dtype=dt)


_ACTS = {"relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
         "tanh": np.tanh, "identity": lambda v: v}
_ACT_GRADS = {"sigmoid": lambda y: y * (1 - y), "tanh": lambda y: 1 - y * y}


def _activation_case(name):
    @st.composite
    def case(draw):
        dt = draw(st.sampled_from(FLOATS))
        shape = tuple(draw(st.lists(dims, min_size=0, max_size=3)))
        x = _away_from_zero(_data(draw, shape, dt, 3.0))
        args = dict(x=x, out=np.empty(shape, dt) if draw(st.booleans()) else None)
        outs = ("out",) if args["out"] is not None else ()

        def ref(g):
            need(g["out"] is None or g["out"].shape == g["x"].shape)
            return _ACTS[name](_f(g["x"]))

        return Case(lambda g: getattr(F, name)(**g), ref, args, ("x",), outs, dtype=dt)
    return case


def _activation_backward_case(name):
    @st.composite
    def case(draw):
        dt = draw(st.sampled_from(FLOATS))
        shape = tuple(draw(st.lists(dims, min_size=1, max_size=3)))
        y = getattr(F, name)(_away_from_zero(_data(draw, shape, dt, 3.0)))
        args = dict(y=y, grad_out=_data(draw, shape, dt))

        def ref(g):
            need(g["y"].shape == g["grad_out"].shape)
            if name == "relu":  # a select, as PyTorch: no gradient (not NaN) where y <= 0
                return np.where(_f(g["y"]) > 0, _f(g["grad_out"]), 0.0)
            return _f(g["grad_out"]) * _ACT_GRADS[name](_f(g["y"]))

        return Case(lambda g: getattr(F, name + "_backward")(**g), ref, args, ("y", "grad_out"),
                    dtype=dt)
    return case


for _name in ("relu", "sigmoid", "tanh"):
    op(_name)(_activation_case(_name))
    op(_name + "_backward")(_activation_backward_case(_name))


@op("bias_activation")
@st.composite
def bias_activation_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    n, c = draw(dims), draw(dims)
    act = draw(st.sampled_from(sorted(_ACTS)))
    x = _data(draw, (n, c), dt)
    b = _away_from_zero(_data(draw, (c,), dt)) if draw(st.booleans()) else None
    if b is not None and act == "relu":
        x = (_away_from_zero(_f(x) + _f(b)) - _f(b)).astype(dt)
    args = dict(x=x, bias=b, activation=act)

    def ref(g):
        x, b = g["x"], g["bias"]
        need(x.ndim == 2 and (b is None or b.shape == (x.shape[1],)))
        return _ACTS[g["activation"]](_f(x) + (0 if b is None else _f(b)))

    return Case(lambda g: F.bias_activation(**g), ref, args,
                ("x",) + (("bias",) if b is not None else ()), dtype=dt)


@op("bias_grad")
@st.composite
def bias_grad_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    n, c = draw(st.integers(1, 300)), draw(dims)
    acc = draw(st.booleans())
    args = dict(grad_out=_data(draw, (n, c), dt), out=_data(draw, (c,), dt), accumulate=acc)

    def ref(g):
        need(g["grad_out"].ndim == 2 and g["out"].shape == (g["grad_out"].shape[1],))
        return (_f(g["out"]) if g["accumulate"] else 0) + _f(g["grad_out"]).sum(0)

    return Case(lambda g: F.bias_grad(**g), ref, args, ("grad_out",), ("out",), dtype=dt)


def _softmax_ref(x, axis, log):
    need(x.ndim >= 1 and -x.ndim <= axis < x.ndim)
    if x.size == 0:
        return np.zeros(x.shape)
    z = _f(x) - _f(x).max(axis=axis, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=axis, keepdims=True))
    return z - lse if log else np.exp(z - lse)


def _softmax_case(log):
    @st.composite
    def case(draw):
        dt = draw(st.sampled_from(FLOATS))
        shape = tuple(draw(st.lists(dims, min_size=1, max_size=3)))
        axis = draw(st.integers(-len(shape), len(shape) - 1))
        args = dict(x=_data(draw, shape, dt, 4.0), axis=axis)
        fn = F.log_softmax if log else F.softmax
        return Case(lambda g: fn(**g), lambda g: _softmax_ref(g["x"], g["axis"], log), args,
                    ("x",), dtype=dt)
    return case


def _softmax_backward_case(log):
    @st.composite
    def case(draw):
        dt = draw(st.sampled_from(FLOATS))
        shape = tuple(draw(st.lists(dims, min_size=1, max_size=3)))
        y = (F.log_softmax if log else F.softmax)(_data(draw, shape, dt, 2.0))
        args = dict(y=y, grad_out=_data(draw, shape, dt))

        def ref(g):
            y, go = _f(g["y"]), _f(g["grad_out"])
            need(y.shape == go.shape and y.ndim >= 1)
            if log:
                return go - np.exp(y) * go.sum(-1, keepdims=True)
            return y * (go - (go * y).sum(-1, keepdims=True))

        fn = F.log_softmax_backward if log else F.softmax_backward
        return Case(lambda g: fn(**g), ref, args, ("y", "grad_out"), dtype=dt)
    return case


op("softmax")(_softmax_case(False))
op("log_softmax")(_softmax_case(True))
op("softmax_backward")(_softmax_backward_case(False))
op("log_softmax_backward")(_softmax_backward_case(True))


@op("argmax")
@st.composite
def argmax_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    x = _data(draw, (draw(dims), draw(dims)), dt)

    def ref(g):
        need(g["x"].ndim == 2 and g["x"].shape[1] >= 1)
        return np.argmax(g["x"], axis=1)

    return Case(lambda g: F.argmax(**g), ref, dict(x=x), ("x",), dtype=dt)


# -- dropout and optimizer updates -------------------------------------------------

def _dropout_case(backward):
    @st.composite
    def case(draw):
        dt = draw(st.sampled_from(FLOATS))
        shape = tuple(draw(st.lists(dims, min_size=1, max_size=3)))
        p = draw(st.sampled_from([0.1, 0.5, 0.9, 0.0]))
        seed = draw(st.integers(0, 2**63 - 1))
        key = "grad_out" if backward else "x"
        args = {key: _data(draw, shape, dt), "p": p, "seed": seed}
        outs = ()
        if draw(st.booleans()):
            args["out"], outs = np.empty(shape, dt), ("out",)
        if not backward and draw(st.integers(0, 4)) == 0:
            args["training"] = False
        fn = F.dropout_backward if backward else F.dropout

        def ref(g):
            v = g[key]
            need(v.dtype in FLOATS)
            need(g.get("out") is None or g["out"].shape == v.shape)
            if not g.get("training", True) or g["p"] == 0:
                return _f(v)
            # the mask depends on (seed, index) only: the forward of ones shows it
            kept = F.dropout(np.ones(v.shape, v.dtype), g["p"], seed=g["seed"]) != 0
            return np.where(kept, _f(v) / (1 - g["p"]), 0.0)

        return Case(lambda g: fn(**g), ref, args, (key,), outs, dtype=dt)
    return case


op("dropout")(_dropout_case(False))
op("dropout_backward")(_dropout_case(True))


@op("sgd_update_")
@st.composite
def sgd_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    shape = tuple(draw(st.lists(dims, min_size=1, max_size=2)))
    mom = draw(st.sampled_from([0.0, 0.9]))
    kw = dict(lr=draw(st.sampled_from([0.1, 0.01])), momentum=mom,
              dampening=draw(st.sampled_from([0.0, 0.1])),
              nesterov=draw(st.booleans()) and mom > 0,
              weight_decay=draw(st.sampled_from([0.0, 0.01])),
              l1=draw(st.sampled_from([0.0, 0.001])), first_step=draw(st.booleans()))
    args = dict(param=_data(draw, shape, dt), grad=_data(draw, shape, dt),
                momentum_buf=_data(draw, shape, dt) if mom else None, **kw)

    def call(g):
        F.sgd_update_(**g)
        return g["param"], g["momentum_buf"]

    def ref(g):
        w, gr, b = _f(g["param"]), _f(g["grad"]), g["momentum_buf"]
        need(w.shape == gr.shape and (b is None or b.shape == w.shape))
        d = gr + g["weight_decay"] * w + g["l1"] * np.sign(w)
        if g["momentum"]:
            b = d if g["first_step"] else g["momentum"] * _f(b) + (1 - g["dampening"]) * d
            d = d + g["momentum"] * b if g["nesterov"] else b
        return w - g["lr"] * d, b

    floats = ("param", "grad") + (("momentum_buf",) if mom else ())
    return Case(call, ref, args, floats, ("param",) + (("momentum_buf",) if mom else ()), dtype=dt)


@op("adam_update_")
@st.composite
def adam_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    shape = tuple(draw(st.lists(dims, min_size=1, max_size=2)))
    ams = draw(st.booleans())
    step = draw(st.integers(1, 5))
    args = dict(param=_data(draw, shape, dt), grad=_data(draw, shape, dt),
                exp_avg=_data(draw, shape, dt, 0.1), exp_avg_sq=np.abs(_data(draw, shape, dt, 0.1)),
                max_exp_avg_sq=np.abs(_data(draw, shape, dt, 0.1)) if ams else None,
                lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=draw(st.sampled_from([0.0, 0.01])), step=step)
    state = ("param", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if ams else ())

    def call(g):
        F.adam_update_(**g)
        return tuple(g[k] for k in state)

    def ref(g):
        w, gr = _f(g["param"]), _f(g["grad"])
        need(all(g[k].shape == w.shape for k in state + ("grad",)))
        need(g["step"] >= 1)
        d = gr + g["weight_decay"] * w
        m = g["beta1"] * _f(g["exp_avg"]) + (1 - g["beta1"]) * d
        v = g["beta2"] * _f(g["exp_avg_sq"]) + (1 - g["beta2"]) * d * d
        vm = np.maximum(_f(g["max_exp_avg_sq"]), v) if ams else v
        c1, c2 = 1 - g["beta1"] ** g["step"], 1 - g["beta2"] ** g["step"]
        w = w - g["lr"] / c1 * m / (np.sqrt(vm) / np.sqrt(c2) + g["eps"])
        return (w, m, v) + ((vm,) if ams else ())

    return Case(call, ref, args, state + ("grad",), state, absurd={"step": [0, -1]}, dtype=dt)


@op("sum_squares")
@st.composite
def sum_squares_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    x = _data(draw, tuple(draw(st.lists(st.integers(1, 60), min_size=1, max_size=3))), dt)
    return Case(lambda g: F.sum_squares(**g), lambda g: (_f(g["x"]) ** 2).sum(), dict(x=x),
                ("x",), dtype=dt)


@op("scale_")
@st.composite
def scale_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    x = _data(draw, tuple(draw(st.lists(dims, min_size=1, max_size=3))), dt)
    args = dict(x=x, alpha=draw(st.sampled_from([0.0, 0.5, -3.0])))
    return Case(lambda g: F.scale_(**g), lambda g: _f(g["x"]) * g["alpha"], args, ("x",), ("x",),
                dtype=dt)


# -- convolution and pooling -------------------------------------------------------

@st.composite
def _conv_geometry(draw, pool=False):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if pool:
        p, d = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2))), (1, 1)
    else:
        p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    span = [d[i] * (k[i] - 1) + 1 - 2 * p[i] for i in range(2)]
    h = draw(st.integers(max(1, span[0]), max(1, span[0]) + 6))
    w = draw(st.integers(max(1, span[1]), max(1, span[1]) + 6))
    return n, c, h, w, k, s, p, d


_CONV_ABSURD = {"stride": [0, -1, (1, 0)], "padding": [-1, (0, -2), HUGE],
                "dilation": [0, -2, HUGE]}


def _geometry_ok(x, k, s, p, d, pool=False):
    need(x.ndim == 4 and all(v >= 1 for v in s + d) and all(v >= 0 for v in p))
    oh = (x.shape[2] + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (x.shape[3] + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    need(oh >= 1 and ow >= 1)
    if pool:
        need(2 * p[0] <= k[0] and 2 * p[1] <= k[1])


def _grouped_ok(x, wt, groups):
    need(isinstance(groups, (int, np.integer)) and groups >= 1, "groups >= 1")
    need(wt.ndim == 4 and x.ndim == 4 and wt.shape[1] * groups == x.shape[1], "C = C/g x g")
    need(wt.shape[0] % groups == 0, "groups divides out_channels")
    need(wt.dtype == x.dtype)


@st.composite
def _grouped_conv(draw):
    n, c, h, w, k, s, p, d = draw(_conv_geometry())
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    return n, c * groups, h, w, k, s, p, d, groups, groups * draw(st.integers(1, 3))


@op("conv2d")
@st.composite
def conv2d_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    n, c, h, w, k, s, p, d, groups, oc = draw(_grouped_conv())
    args = dict(x=_data(draw, (n, c, h, w), dt), weight=_data(draw, (oc, c // groups) + k, dt),
                bias=_data(draw, (oc,), dt) if draw(st.booleans()) else None,
                stride=s, padding=p, dilation=d, groups=groups)

    def call(g):
        shape = F.conv2d_output_shape(g["x"].shape, g["weight"].shape, g["stride"],
                                      g["padding"], g["dilation"])
        return F.conv2d(**g), shape

    def ref(g):
        x, wt, b = g["x"], g["weight"], g["bias"]
        s, p, d = _pair(g["stride"]), _pair(g["padding"]), _pair(g["dilation"])
        _grouped_ok(x, wt, g["groups"])
        need(b is None or (b.shape == (wt.shape[0],) and b.dtype == x.dtype))
        _geometry_ok(x, wt.shape[2:], s, p, d)
        y = CR.conv2d_grouped_ref(x, wt, None if b is None else _f(b), s, p, d, g["groups"])
        return y, y.shape

    floats = ("x", "weight") + (("bias",) if args["bias"] is not None else ())
    return Case(call, ref, args, floats, absurd=dict(_CONV_ABSURD, groups=[0, -1, HUGE]),
                dtype=dt)


@op("conv2d_backward")
@st.composite
def conv2d_backward_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    n, c, h, w, k, s, p, d, groups, oc = draw(_grouped_conv())
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    acc = draw(st.booleans())
    need_in, need_w, need_b = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    old = (lambda shp: _data(draw, shp, dt)) if acc else (lambda shp: np.full(shp, np.nan, dt))
    wshape = (oc, c // groups) + k
    args = dict(x=_data(draw, (n, c, h, w), dt), weight=_data(draw, wshape, dt),
                grad_out=_data(draw, (n, oc, oh, ow), dt), stride=s, padding=p, dilation=d,
                groups=groups, need_input=need_in, need_weight=need_w, need_bias=need_b,
                accumulate=acc,  # accumulate=False: the given arrays are overwritten, unread
                grad_weight=old(wshape) if need_w and (acc or draw(st.booleans())) else None,
                grad_bias=old((oc,)) if need_b and (acc or draw(st.booleans())) else None)

    def ref(g):
        x, wt, dy = g["x"], g["weight"], g["grad_out"]
        s, p, d = _pair(g["stride"]), _pair(g["padding"]), _pair(g["dilation"])
        _grouped_ok(x, wt, g["groups"])
        need(dy.ndim == 4 and dy.dtype == x.dtype)
        _geometry_ok(x, wt.shape[2:], s, p, d)
        oh = (x.shape[2] + 2 * p[0] - d[0] * (wt.shape[2] - 1) - 1) // s[0] + 1
        ow = (x.shape[3] + 2 * p[1] - d[1] * (wt.shape[3] - 1) - 1) // s[1] + 1
        need(dy.shape == (x.shape[0], wt.shape[0], oh, ow))
        gw, gb = g["grad_weight"], g["grad_bias"]
        need(not g["need_weight"] or gw is None or gw.shape == wt.shape)
        need(not g["need_bias"] or gb is None or gb.shape == (wt.shape[0],))
        need(not g["accumulate"] or ((gw is not None or not g["need_weight"])
                                     and (gb is not None or not g["need_bias"])))
        dx, dw, db = CR.conv2d_grouped_backward_ref(x, wt, dy, s, p, d, g["groups"])
        if g["accumulate"]:
            dw, db = dw + (_f(gw) if gw is not None else 0), db + (_f(gb) if gb is not None else 0)
        return (dx if g["need_input"] else None, dw if g["need_weight"] else None,
                db if g["need_bias"] else None)

    outs = tuple(k for k in ("grad_weight", "grad_bias") if args[k] is not None)
    return Case(lambda g: F.conv2d_backward(**g), ref, args, ("x", "weight", "grad_out"), outs,
                absurd=dict(_CONV_ABSURD, groups=[0, -1, HUGE]), dtype=dt)


@op("im2col")
@st.composite
def im2col_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    n, c, h, w, k, s, p, d = draw(_conv_geometry())
    args = dict(x=_data(draw, (n, c, h, w), dt), kernel_size=k, stride=s, padding=p, dilation=d)

    def ref(g):
        k, s, p, d = (_pair(g[a]) for a in ("kernel_size", "stride", "padding", "dilation"))
        need(min(k) >= 1)
        _geometry_ok(g["x"], k, s, p, d)
        return CR.im2col_ref(g["x"], k, s, p, d)

    return Case(lambda g: F.im2col(**g), ref, args, ("x",),
                absurd=dict(_CONV_ABSURD, kernel_size=[0, -1, HUGE]), dtype=dt)


def _col2im_ref(cols, shape, k, s, p, d):
    n, c, h, w = shape
    idx = np.arange(c * h * w, dtype=np.float64).reshape(1, c, h, w)
    taps = CR.im2col_ref(np.pad(idx + 1, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1]))) - 1,
                         k, s, (0, 0), d)[0]  # -1 marks padding
    need(cols.shape == (n,) + taps.shape)
    out = np.zeros((n, c * h * w))
    valid = taps >= 0
    for i in range(n):
        np.add.at(out[i], taps[valid].astype(np.int64), _f(cols[i])[valid])
    return out.reshape(shape)


@op("col2im")
@st.composite
def col2im_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    n, c, h, w, k, s, p, d = draw(_conv_geometry())
    cols_shape = F.im2col(np.zeros((n, c, h, w), dt), k, s, p, d).shape
    args = dict(cols=_data(draw, cols_shape, dt), input_shape=(n, c, h, w), kernel_size=k,
                stride=s, padding=p, dilation=d)

    def ref(g):
        k, s, p, d = (_pair(g[a]) for a in ("kernel_size", "stride", "padding", "dilation"))
        need(g["cols"].ndim == 3 and min(k) >= 1)
        _geometry_ok(np.empty(g["input_shape"]), k, s, p, d)
        return _col2im_ref(g["cols"], g["input_shape"], k, s, p, d)

    return Case(lambda g: F.col2im(**g), ref, args, ("cols",),
                absurd=dict(_CONV_ABSURD, kernel_size=[0, -1, HUGE]), dtype=dt)


@op("max_pool2d")
@st.composite
def max_pool_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    n, c, h, w, k, s, p, _ = draw(_conv_geometry(pool=True))
    args = dict(x=_data(draw, (n, c, h, w), dt), kernel_size=k, stride=s, padding=p,
                return_indices=True, ceil_mode=draw(st.booleans()))

    def ref(g):
        k, s, p = _pair(g["kernel_size"]), _pair(g["stride"]), _pair(g["padding"])
        _geometry_ok(g["x"], k, s, p, (1, 1), pool=True)
        return CR.max_pool_ref(g["x"], k, s, p, g["ceil_mode"])

    return Case(lambda g: F.max_pool2d(**g), ref, args, ("x",),
                absurd=dict(kernel_size=[0, -1, HUGE], stride=[0, -1], padding=[-1, HUGE]),
                dtype=dt)


@op("max_pool2d_backward")
@st.composite
def max_pool_backward_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    n, c, h, w, k, s, p, _ = draw(_conv_geometry(pool=True))
    x = _data(draw, (n, c, h, w), dt)
    cm = draw(st.booleans())
    y, idx = F.max_pool2d(x, k, s, p, return_indices=True, ceil_mode=cm)
    args = dict(grad_out=_data(draw, y.shape, dt), indices=idx, input_shape=x.shape,
                kernel_size=k, stride=s, padding=p, ceil_mode=cm)

    def ref(g):
        go, ix, shape = g["grad_out"], np.asarray(g["indices"]), tuple(g["input_shape"])
        need(go.ndim == 4 and ix.shape == go.shape and len(shape) == 4)
        need(shape[:2] == go.shape[:2] and ix.dtype == np.int64)
        need(ix.size == 0 or (ix.min() >= 0 and ix.max() < shape[2] * shape[3]))
        out = np.zeros(shape[:2] + (shape[2] * shape[3],))
        for a in range(shape[0]):
            for b in range(shape[1]):
                np.add.at(out[a, b], ix[a, b].ravel(), _f(go[a, b]).ravel())
        return out.reshape(shape)

    return Case(lambda g: F.max_pool2d_backward(**g), ref, args, ("grad_out",), dtype=dt)


def _avg_pool_backward_ref(go, shape, k, s, p, cip):
    n, c, h, w = shape
    out = np.zeros(shape)
    for i in range(go.shape[2]):
        for j in range(go.shape[3]):
            hs, ws = i * s[0] - p[0], j * s[1] - p[1]
            he, we = min(hs + k[0], h + p[0]), min(ws + k[1], w + p[1])
            h0, w0, h1, w1 = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            div = (he - hs) * (we - ws) if cip else (h1 - h0) * (w1 - w0)
            out[:, :, h0:h1, w0:w1] += _f(go[:, :, i:i + 1, j:j + 1]) / div
    return out


@op("avg_pool2d")
@st.composite
def avg_pool_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    n, c, h, w, k, s, p, _ = draw(_conv_geometry(pool=True))
    args = dict(x=_data(draw, (n, c, h, w), dt), kernel_size=k, stride=s, padding=p,
                count_include_pad=draw(st.booleans()), ceil_mode=draw(st.booleans()))

    def ref(g):
        k, s, p = _pair(g["kernel_size"]), _pair(g["stride"]), _pair(g["padding"])
        _geometry_ok(g["x"], k, s, p, (1, 1), pool=True)
        return CR.avg_pool_ref(g["x"], k, s, p, g["count_include_pad"], g["ceil_mode"])

    return Case(lambda g: F.avg_pool2d(**g), ref, args, ("x",),
                absurd=dict(kernel_size=[0, -1, HUGE], stride=[0, -1], padding=[-1, HUGE]),
                dtype=dt)


@op("avg_pool2d_backward")
@st.composite
def avg_pool_backward_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    n, c, h, w, k, s, p, _ = draw(_conv_geometry(pool=True))
    cip, cm = draw(st.booleans()), draw(st.booleans())
    oshape = F.pool2d_output_shape((n, c, h, w), k, s, p, cm)
    args = dict(grad_out=_data(draw, oshape, dt), input_shape=(n, c, h, w), kernel_size=k,
                stride=s, padding=p, count_include_pad=cip, ceil_mode=cm)

    def ref(g):
        k, s, p = _pair(g["kernel_size"]), _pair(g["stride"]), _pair(g["padding"])
        shape = tuple(g["input_shape"])
        _geometry_ok(np.empty(shape), k, s, p, (1, 1), pool=True)
        need(g["grad_out"].shape == shape[:2] + tuple(
            CR.pool_out(shape[2 + i], k[i], s[i], p[i], g["ceil_mode"]) for i in range(2)))
        return _avg_pool_backward_ref(g["grad_out"], shape, k, s, p, g["count_include_pad"])

    return Case(lambda g: F.avg_pool2d_backward(**g), ref, args, ("grad_out",),
                absurd=dict(kernel_size=[0, -1, HUGE], stride=[0, -1], padding=[-1]), dtype=dt)


# -- recurrent and embeddings ------------------------------------------------------

_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


@op("rnn")
@st.composite
def rnn_case(draw):
    """rnn_forward then rnn_backward of one layer-direction, against rnn_reference."""
    dt = draw(st.sampled_from(FLOATS))
    mode = draw(st.sampled_from(sorted(_GATES)))
    n, t, i, h = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(dims), draw(dims)
    gh = _GATES[mode] * h
    bf, rev = draw(st.booleans()), draw(st.booleans())
    lengths = np.array(draw(st.lists(st.integers(0, t), min_size=n, max_size=n))) \
        if draw(st.booleans()) else None
    x = _data(draw, (n, t, i), dt)
    args = dict(x=x if bf else np.ascontiguousarray(x.transpose(1, 0, 2)),
                w_ih=_data(draw, (gh, i), dt, 0.5), w_hh=_data(draw, (gh, h), dt, 0.5),
                b_ih=_data(draw, (gh,), dt, 0.5), b_hh=_data(draw, (gh,), dt, 0.5),
                h0=_data(draw, (n, h), dt), c0=_data(draw, (n, h), dt) if mode == "lstm" else None,
                dy=_data(draw, (n, t, h) if bf else (t, n, h), dt), dh_n=_data(draw, (n, h), dt),
                lengths=lengths, mode=mode, batch_first=bf, reverse=rev)

    def call(g):
        fw = {k: g[k] for k in ("mode", "x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "c0",
                                "lengths", "batch_first", "reverse")}
        y, h_n, c_n, cache = F.rnn_forward(**fw)
        y, h_n = y.copy(), h_n.copy()
        dw_ih, dw_hh = np.zeros_like(g["w_ih"]), np.zeros_like(g["w_hh"])
        db_ih, db_hh = np.zeros_like(g["b_ih"]), np.zeros_like(g["b_hh"])
        dx, dh0, _ = F.rnn_backward(g["mode"], g["x"], g["w_ih"], g["w_hh"], cache, g["dy"],
                                    g["dh_n"], None, g["lengths"], dw_ih=dw_ih, dw_hh=dw_hh,
                                    db_ih=db_ih, db_hh=db_hh, batch_first=g["batch_first"],
                                    reverse=g["reverse"])
        return y, h_n, dx, dh0, dw_ih, dw_hh, db_ih, db_hh

    def ref(g):
        x, dy = _f(g["x"]), _f(g["dy"])
        need(x.ndim == 3 and dy.ndim == 3 and g["w_ih"].ndim == 2 and g["w_hh"].ndim == 2)
        if not g["batch_first"]:
            x, dy = x.transpose(1, 0, 2), dy.transpose(1, 0, 2)
        G, H = _GATES[g["mode"]], g["w_hh"].shape[1]
        n_ = x.shape[0]
        need(g["w_ih"].shape == (G * H, x.shape[2]) and g["w_hh"].shape == (G * H, H))
        need(g["b_ih"].shape == g["b_hh"].shape == (G * H,) and dy.shape == x.shape[:2] + (H,))
        need(g["h0"].shape == g["dh_n"].shape == (n_, H))
        need(g["c0"] is None or g["c0"].shape == (n_, H))
        r = RR.direction(g["mode"], x, _f(g["w_ih"]), _f(g["w_hh"]), _f(g["b_ih"]),
                         _f(g["b_hh"]), _f(g["h0"]), None if g["c0"] is None else _f(g["c0"]),
                         g["lengths"], g["reverse"], dy=dy, dh_n=_f(g["dh_n"]))
        y, dx = r["y"], r["dx"]
        if not g["batch_first"]:
            y, dx = y.transpose(1, 0, 2), dx.transpose(1, 0, 2)
        return y, r["h_n"], dx, r["dh0"], r["dw_ih"], r["dw_hh"], r["db_ih"], r["db_hh"]

    floats = ("x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "dy", "dh_n") + \
        (("c0",) if mode == "lstm" else ())
    return Case(call, ref, args, floats, dtype=dt)


@op("embedding")
@st.composite
def embedding_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    v, e = draw(dims), draw(dims)
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=2)))
    idx = np.random.default_rng(draw(st.integers(0, 99))).integers(0, v, shape)
    args = dict(weight=_data(draw, (v, e), dt), indices=idx)

    def ref(g):
        w, ix = g["weight"], np.asarray(g["indices"])
        need(w.ndim == 2 and ix.dtype.kind in "iu")
        need(ix.size == 0 or (ix.min() >= 0 and ix.max() < w.shape[0]))
        return _f(w)[ix]

    return Case(lambda g: F.embedding(**g), ref, args, ("weight",), dtype=dt)


@op("embedding_backward")
@st.composite
def embedding_backward_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    v, e = draw(dims), draw(dims)
    shape = tuple(draw(st.lists(st.integers(0, 40), min_size=1, max_size=2)))
    idx = np.random.default_rng(draw(st.integers(0, 99))).integers(0, v, shape)
    args = dict(dout=_data(draw, shape + (e,), dt), indices=idx, dweight=_data(draw, (v, e), dt))

    def ref(g):
        d, ix, dw = _f(g["dout"]), np.asarray(g["indices"]), _f(g["dweight"])
        need(dw.ndim == 2 and d.shape == ix.shape + (dw.shape[1],))
        need(ix.size == 0 or (ix.min() >= 0 and ix.max() < dw.shape[0]))
        out = dw.copy()
        np.add.at(out, ix.reshape(-1), d.reshape(-1, dw.shape[1]))
        return out

    return Case(lambda g: F.embedding_backward(**g), ref, args, ("dout",), ("dweight",), dtype=dt)
