"""Fuzz table (see _fuzz_base.py): the parametrised activations (LeakyReLU, ELU, GELU,
Softplus) and their backward forms, add / cat / split, channel dropout.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from neuropil import functional as F

from _fuzz_base import FLOATS, HUGE, Case, _away_from_zero, _data, _f, dims, need, op

_erfc = np.vectorize(math.erfc, otypes=[np.float64])
_SQRT_2_PI = math.sqrt(2 / math.pi)


def _phi_cdf(x):
    return 0.5 * _erfc(-x / math.sqrt(2))


def _sigmoid(z):
    return np.exp(-np.logaddexp(0, -z))


# forward(x, params) and backward(s, grad_out, params) of each activation, in float64;
# `s` is the input x (ELU with is_result: the output y)
def _leaky(x, p):
    return np.where(x > 0, x, p["negative_slope"] * x)


def _leaky_grad(x, go, p):
    return np.where(x > 0, go, p["negative_slope"] * go)


def _elu(x, p):
    return np.where(x > 0, x, p["alpha"] * np.expm1(np.minimum(x, 0)))


def _elu_grad(s, go, p):
    if p.get("is_result"):
        return np.where(s > 0, go, go * (s + p["alpha"]))
    return np.where(s > 0, go, go * p["alpha"] * np.exp(np.minimum(s, 0)))


def _gelu(x, p):
    if p["approximate"] == "tanh":
        return 0.5 * x * (1 + np.tanh(_SQRT_2_PI * (x + 0.044715 * x ** 3)))
    return x * _phi_cdf(x)


def _gelu_grad(x, go, p):
    if p["approximate"] == "tanh":
        th = np.tanh(_SQRT_2_PI * (x + 0.044715 * x ** 3))
        return go * (0.5 * (1 + th) + 0.5 * x * (1 - th * th) * _SQRT_2_PI
                     * (1 + 3 * 0.044715 * x * x))
    return go * (_phi_cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))


def _softplus(x, p):
    z = p["beta"] * x
    soft = (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))) / p["beta"]
    return np.where(z > p["threshold"], x, soft)


def _softplus_grad(x, go, p):
    z = p["beta"] * x
    return np.where(z > p["threshold"], go, go * _sigmoid(z))


_POINTWISE = {"leaky_relu": (_leaky, _leaky_grad), "elu": (_elu, _elu_grad),
              "gelu": (_gelu, _gelu_grad), "softplus": (_softplus, _softplus_grad)}


def _draw_params(draw, name):
    if name == "leaky_relu":
        return dict(negative_slope=draw(st.sampled_from([0.01, 0.0, 0.2, 1.5, -0.3])))
    if name == "elu":
        return dict(alpha=draw(st.sampled_from([1.0, 0.5, 2.0, 0.0, -0.5])))
    if name == "gelu":
        return dict(approximate=draw(st.sampled_from(["none", "tanh"])))
    return dict(beta=draw(st.sampled_from([1.0, 0.5, 3.0, -1.0])),
                threshold=draw(st.sampled_from([20.0, 1.0, 0.0, -2.0, math.inf])))


def _valid_params(name, p):
    if name == "gelu":
        need(p["approximate"] in ("none", "tanh"))
    if name == "softplus":
        need(p["beta"] != 0, "beta must be non-zero")


def _away_from_kinks(name, x, p):
    """Inputs where float32 and float64 agree: no kink at 0, no softplus threshold jump."""
    if name == "softplus":
        z = p["beta"] * _f(x)
        near = np.abs(z - p["threshold"]) < 1e-2 * max(1.0, abs(p["threshold"]))
        return np.where(near, x + 0.05 / p["beta"], x).astype(x.dtype)
    return _away_from_zero(x, 1e-2)


def _pointwise_case(name):
    @st.composite
    def case(draw):
        dt = draw(st.sampled_from(FLOATS))
        shape = tuple(draw(st.lists(dims, min_size=0, max_size=3)))
        p = _draw_params(draw, name)
        x = _away_from_kinks(name, _data(draw, shape, dt, 3.0), p)
        args = dict(x=x, **p)
        outs = ()
        how = draw(st.sampled_from(["new", "out", "inplace"] if name in ("leaky_relu", "elu")
                                   else ["new", "out"]))
        if how == "out":
            args["out"], outs = np.empty(shape, dt), ("out",)
        elif how == "inplace":
            args["inplace"], outs = True, ("x",)

        def ref(g):
            need(g["x"].dtype in FLOATS)
            need(g.get("out") is None or g["out"].shape == g["x"].shape)
            prm = {k: g[k] for k in p}
            _valid_params(name, prm)
            with np.errstate(all="ignore"):
                return _POINTWISE[name][0](_f(g["x"]), prm)

        return Case(lambda g: getattr(F, name)(**g), ref, args, ("x",), outs, dtype=dt)
    return case


def _pointwise_backward_case(name):
    @st.composite
    def case(draw):
        dt = draw(st.sampled_from(FLOATS))
        shape = tuple(draw(st.lists(dims, min_size=0, max_size=3)))
        p = _draw_params(draw, name)
        x = _away_from_kinks(name, _data(draw, shape, dt, 3.0), p)
        if name == "elu" and p["alpha"] >= 0 and draw(st.booleans()):
            p["is_result"] = True  # the backward from the forward's output
            x = F.elu(x, p["alpha"])
        args = dict(x=x, grad_out=_data(draw, shape, dt), **p)
        outs = ()
        if draw(st.booleans()):
            args["out"], outs = np.empty(shape, dt), ("out",)

        def ref(g):
            s, go = g["x"], g["grad_out"]
            need(s.dtype in FLOATS and go.dtype in FLOATS and s.shape == go.shape)
            need(g.get("out") is None or g["out"].shape == s.shape)
            prm = {k: g[k] for k in p}
            _valid_params(name, prm)
            with np.errstate(all="ignore"):
                return _POINTWISE[name][1](_f(s), _f(go), prm)

        return Case(lambda g: getattr(F, name + "_backward")(**g), ref, args, ("x", "grad_out"),
                    outs, dtype=dt)
    return case


for _name in _POINTWISE:
    op(_name)(_pointwise_case(_name))
    op(_name + "_backward")(_pointwise_backward_case(_name))


# -- add, cat, split --------------------------------------------------------------------

@op("add")
@st.composite
def add_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    shape = tuple(draw(st.lists(dims, min_size=0, max_size=3)))
    out = np.empty(shape, dt) if draw(st.booleans()) else None
    args = dict(a=_data(draw, shape, dt), b=_data(draw, shape, dt), out=out)

    def ref(g):
        a, b = g["a"], g["b"]
        need(a.dtype in FLOATS and a.dtype == b.dtype and a.shape == b.shape, "one shape, dtype")
        need(g["out"] is None or g["out"].shape == a.shape)
        return _f(a) + _f(b)

    return Case(lambda g: F.add(**g), ref, args, ("a", "b"), ("out",) if out is not None else (),
                dtype=dt)


def _dim_ok(dim, nd):
    need(isinstance(dim, (int, np.integer)) and -nd <= dim < nd, "dim out of range")
    return int(dim) % nd


@op("cat")
@st.composite
def cat_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    k = draw(st.integers(1, 3))
    parts = {}
    for i in range(k):
        s = list(shape)
        s[dim] = draw(st.integers(0 if k > 1 else 1, 4))
        parts[f"a{i}"] = _data(draw, tuple(s), dt)
    total = list(shape)
    total[dim] = sum(a.shape[dim] for a in parts.values())
    out = np.empty(tuple(total), dt) if draw(st.booleans()) else None
    args = dict(parts, dim=dim, out=out)
    names = sorted(parts)

    def call(g):
        return F.cat([g[n] for n in names], g["dim"], out=g["out"])

    def ref(g):
        arrays = [g[n] for n in names]
        need(all(a.dtype in FLOATS and a.dtype == arrays[0].dtype for a in arrays))
        nd = arrays[0].ndim
        need(nd >= 1 and all(a.ndim == nd for a in arrays), "one rank, at least 1")
        d = _dim_ok(g["dim"], nd)
        need(all(a.shape[:d] + a.shape[d + 1:] == arrays[0].shape[:d] + arrays[0].shape[d + 1:]
                 for a in arrays), "other dimensions agree")
        res = np.concatenate([_f(a) for a in arrays], axis=d)
        need(g["out"] is None or g["out"].shape == res.shape)
        return res

    return Case(call, ref, args, tuple(names), ("out",) if out is not None else (),
                absurd={"dim": [len(shape), -len(shape) - 1, HUGE]}, dtype=dt)


@op("split")
@st.composite
def split_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[dim]
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
    sizes = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    args = dict(x=_data(draw, shape, dt), sizes=sizes, dim=dim)
    outs = ()
    if draw(st.booleans()):
        for i, s in enumerate(sizes):
            piece = list(shape)
            piece[dim] = s
            args[f"o{i}"] = np.empty(tuple(piece), dt)
        outs = tuple(f"o{i}" for i in range(len(sizes)))

    def call(g):
        pieces = F.split(g["x"], g["sizes"], g["dim"],
                         outs=[g[o] for o in outs] if outs else None)
        return tuple(pieces)

    def ref(g):
        x = g["x"]
        need(x.dtype in FLOATS and x.ndim >= 1)
        d = _dim_ok(g["dim"], x.ndim)
        sz = list(g["sizes"])
        need(all(s >= 0 for s in sz) and sum(sz) == x.shape[d], "sizes sum to the axis")
        res = tuple(np.split(_f(x), np.cumsum(sz)[:-1], axis=d))
        need(all(g[o].shape == r.shape for o, r in zip(outs, res)), "outs shapes")
        return res

    return Case(call, ref, args, ("x",), outs,
                absurd={"sizes": [[n + 1], [-1, n + 1], [HUGE, n - HUGE]],
                        "dim": [len(shape), HUGE]}, dtype=dt)


# -- channel dropout ---------------------------------------------------------------------

def _dropout2d_case(backward):
    @st.composite
    def case(draw):
        dt = draw(st.sampled_from(FLOATS))
        shape = (draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 5)),
                 draw(st.integers(1, 5)))
        p = draw(st.sampled_from([0.1, 0.5, 0.9, 0.0]))
        seed = draw(st.integers(0, 2**63 - 1))
        key = "grad_out" if backward else "x"
        args = {key: _data(draw, shape, dt), "p": p, "seed": seed}
        outs = ()
        if draw(st.booleans()):
            args["out"], outs = np.empty(shape, dt), ("out",)
        if not backward and draw(st.integers(0, 4)) == 0:
            args["training"] = False
        fn = F.dropout2d_backward if backward else F.dropout2d

        def ref(g):
            v = g[key]
            need(v.dtype in FLOATS and v.ndim == 4, "(N, C, H, W) floats")
            need(g.get("out") is None or g["out"].shape == v.shape)
            if not g.get("training", True) or g["p"] == 0:
                return _f(v)
            # the mask is a function of (seed, n*C + c): read it off the forward of ones
            kept = F.dropout2d(np.ones(v.shape, v.dtype), g["p"], seed=g["seed"]) != 0
            need(v.size == 0 or np.array_equal(kept.all(axis=(2, 3)), kept.any(axis=(2, 3))),
                 "the mask drops whole planes")
            return np.where(kept, _f(v) / (1 - g["p"]), 0.0)

        return Case(lambda g: fn(**g), ref, args, (key,), outs, dtype=dt)
    return case


op("dropout2d")(_dropout2d_case(False))
op("dropout2d_backward")(_dropout2d_case(True))
