"""Fuzz table (see _fuzz_base.py): transposed convolution, batch normalisation and
interpolation, each with its backward and its output-shape helper.

The references are written here from the definitions, independent of the kernels'
algorithms: the transposed convolution as a scatter-add of every input pixel times
the kernel (``np.add.at``) and its backward as the matching gather; interpolation as two
weighted taps per output index and axis, by PyTorch's index rules; batch norm from
its formulas, the running variance unbiased.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from neuropil import functional as F

from _fuzz_base import FLOATS, HUGE, Case, _data, _f, _pair, need, op


# -- transposed convolution ------------------------------------------------------------

def _taps(size, k, s, p, d, out):
    """Output index of every (input index, tap) pair and whether it lands inside."""
    idx = np.arange(size)[:, None] * s - p + np.arange(k)[None, :] * d  # (size, k)
    return idx, (idx >= 0) & (idx < out)


def conv_transpose2d_ref(x, w, b, s, p, op_, groups, d):
    """Scatter-add: for every input pixel (i, j) and kernel tap (a, c),
    y[n, g·og + o, i·s − p + a·d, j·s − p + c·d] += x[n, g·cg + ci, i, j] · w[g·cg + ci, o, a, c]
    (targets outside the output dropped), then the bias."""
    n, cin, h, wd = x.shape
    _, og, kh, kw = w.shape
    cg = cin // groups
    ho = (h - 1) * s[0] - 2 * p[0] + d[0] * (kh - 1) + op_[0] + 1
    wo = (wd - 1) * s[1] - 2 * p[1] + d[1] * (kw - 1) + op_[1] + 1
    xr = _f(x).reshape(n, groups, cg, h, wd)
    wr = _f(w).reshape(groups, cg, og, kh, kw)
    contrib = np.einsum("ngchw,gcoab->hwabngo", xr, wr)  # every input pixel times every tap
    rows, rok = _taps(h, kh, s[0], p[0], d[0], ho)
    cols, cok = _taps(wd, kw, s[1], p[1], d[1], wo)
    r4 = np.broadcast_to(rows[:, None, :, None], (h, wd, kh, kw))
    c4 = np.broadcast_to(cols[None, :, None, :], (h, wd, kh, kw))
    keep = rok[:, None, :, None] & cok[None, :, None, :]
    y = np.zeros((ho, wo, n, groups, og))
    np.add.at(y, (r4[keep], c4[keep]), contrib[keep])
    y = y.transpose(2, 3, 4, 0, 1).reshape(n, groups * og, ho, wo)
    return y if b is None else y + _f(b)[None, :, None, None]


def conv_transpose2d_backward_ref(x, w, dy, s, p, groups, d):
    """The adjoint: gather dy at each (input pixel, tap) target; 0 where it falls outside."""
    n, cin, h, wd = x.shape
    _, og, kh, kw = w.shape
    cg = cin // groups
    ho, wo = dy.shape[2:]
    rows, rok = _taps(h, kh, s[0], p[0], d[0], ho)
    cols, cok = _taps(wd, kw, s[1], p[1], d[1], wo)
    dyr = _f(dy).reshape(n, groups, og, ho, wo)
    gathered = dyr[:, :, :, np.clip(rows, 0, ho - 1)[:, None, :, None],
                   np.clip(cols, 0, wo - 1)[None, :, None, :]]  # (n, g, o, h, w, a, c)
    gathered = np.where(rok[:, None, :, None] & cok[None, :, None, :], gathered, 0.0)
    xr = _f(x).reshape(n, groups, cg, h, wd)
    wr = _f(w).reshape(groups, cg, og, kh, kw)
    dx = np.einsum("ngohwab,gcoab->ngchw", gathered, wr).reshape(x.shape)
    dw = np.einsum("ngchw,ngohwab->gcoab", xr, gathered).reshape(w.shape)
    return dx, dw, _f(dy).sum(axis=(0, 2, 3))


@st.composite
def _transpose_geometry(draw):
    groups = draw(st.integers(1, 3))
    cin, og = groups * draw(st.integers(1, 2)), draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    op_ = tuple(draw(st.integers(0, max(s[i], d[i]) - 1)) for i in range(2))
    hw = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    # padding up to what keeps the output non-empty
    p = tuple(draw(st.integers(0, min(2, ((hw[i] - 1) * s[i] + d[i] * (k[i] - 1) + op_[i]) // 2)))
              for i in range(2))
    return draw(st.integers(1, 3)), groups, cin, og, k, s, p, op_, d, hw


def _transpose_ok(g, x, w):
    s, p, op_, d = (_pair(g[a]) for a in ("stride", "padding", "output_padding", "dilation"))
    groups = g["groups"]
    need(x.ndim == 4 and w.ndim == 4 and x.dtype in FLOATS and w.dtype == x.dtype)
    need(isinstance(groups, (int, np.integer)) and groups >= 1 and w.shape[0] % groups == 0)
    need(w.shape[0] == x.shape[1], "weight is (Cin, Cout/groups, kH, kW)")
    need(min(s + d) >= 1 and min(p + op_) >= 0 and max(s + p + op_ + d) <= 2**31)
    need(all(op_[i] < max(s[i], d[i]) for i in range(2)), "output_padding < stride or dilation")
    ho = (x.shape[2] - 1) * s[0] - 2 * p[0] + d[0] * (w.shape[2] - 1) + op_[0] + 1
    wo = (x.shape[3] - 1) * s[1] - 2 * p[1] + d[1] * (w.shape[3] - 1) + op_[1] + 1
    need(ho >= 1 and wo >= 1, "empty output")
    return s, p, op_, d, groups, (x.shape[0], w.shape[1] * groups, ho, wo)


_TRANSPOSE_ABSURD = {"stride": [0, -1, (1, 0), HUGE], "padding": [-1, (0, -2), HUGE],
                     "dilation": [0, -2, HUGE], "output_padding": [-1, HUGE],
                     "groups": [0, -1, HUGE]}


@op("conv_transpose2d")
@st.composite
def conv_transpose2d_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    n, groups, cin, og, k, s, p, op_, d, hw = draw(_transpose_geometry())
    args = dict(x=_data(draw, (n, cin) + hw, dt), weight=_data(draw, (cin, og) + k, dt),
                bias=_data(draw, (og * groups,), dt) if draw(st.booleans()) else None,
                stride=s, padding=p, output_padding=op_, groups=groups, dilation=d)

    def call(g):
        y = F.conv_transpose2d(**g)
        shape = F.conv_transpose2d_output_shape(g["x"].shape, g["weight"].shape, g["stride"],
                                                g["padding"], g["output_padding"], g["groups"],
                                                g["dilation"])
        return y, shape

    def ref(g):
        x, w, b = g["x"], g["weight"], g["bias"]
        s, p, op_, d, groups, shape = _transpose_ok(g, x, w)
        need(b is None or (b.shape == (shape[1],) and b.dtype == x.dtype))
        y = conv_transpose2d_ref(x, w, b, s, p, op_, groups, d)
        return y, y.shape

    floats = ("x", "weight") + (("bias",) if args["bias"] is not None else ())
    return Case(call, ref, args, floats, absurd=_TRANSPOSE_ABSURD, dtype=dt)


@op("conv_transpose2d_backward")
@st.composite
def conv_transpose2d_backward_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    n, groups, cin, og, k, s, p, op_, d, hw = draw(_transpose_geometry())
    x, w = _data(draw, (n, cin) + hw, dt), _data(draw, (cin, og) + k, dt)
    shape = F.conv_transpose2d_output_shape(x.shape, w.shape, s, p, op_, groups, d)
    beta = draw(st.sampled_from([0.0, 1.0, 0.5]))
    need_in, need_w, need_b = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    old = (lambda shp: _data(draw, shp, dt)) if beta else (lambda shp: np.full(shp, np.nan, dt))
    args = dict(x=x, weight=w, grad_out=_data(draw, shape, dt), stride=s, padding=p,
                output_padding=op_, groups=groups, dilation=d, need_input=need_in,
                need_weight=need_w, need_bias=need_b, beta=beta,
                grad_weight=old(w.shape) if need_w else None,  # beta 0: never read
                grad_bias=old((shape[1],)) if need_b else None)

    def ref(g):
        x, w, dy = g["x"], g["weight"], g["grad_out"]
        s, p, _, d, groups, shape = _transpose_ok(g, x, w)
        need(dy.ndim == 4 and dy.shape == shape and dy.dtype == x.dtype)
        gw, gb = g["grad_weight"], g["grad_bias"]
        need(gw is None or gw.shape == w.shape)
        need(gb is None or gb.shape == (shape[1],))
        dx, dw, db = conv_transpose2d_backward_ref(x, w, dy, s, p, groups, d)
        keep = g["beta"] * _f(gw) if g["beta"] else 0.0
        keep_b = g["beta"] * _f(gb) if g["beta"] else 0.0
        return (dx if g["need_input"] else None, keep + dw if g["need_weight"] else None,
                keep_b + db if g["need_bias"] else None)

    outs = (("grad_weight",) if need_w else ()) + (("grad_bias",) if need_b else ())
    return Case(lambda g: F.conv_transpose2d_backward(**g), ref, args,
                ("x", "weight", "grad_out"), outs, absurd=_TRANSPOSE_ABSURD, dtype=dt)


# -- batch normalisation -----------------------------------------------------------------

def _bn_shape(draw):
    rank = draw(st.sampled_from([2, 3, 4]))
    return (draw(st.integers(1, 5)), draw(st.integers(1, 4))) + tuple(
        draw(st.integers(1, 4)) for _ in range(rank - 2))


def _channel(v, x):
    need(v is None or (v.shape == (x.shape[1],) and v.dtype == x.dtype),
         "a (C,) vector of x's dtype")
    return None if v is None else _f(v)


def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


@op("batch_norm")
@st.composite
def batch_norm_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    shape = _bn_shape(draw)
    m = shape[0] * int(np.prod(shape[2:]))
    training = m > 1 and draw(st.booleans())
    c = shape[1]
    tracked = not training or draw(st.booleans())
    gen = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    vec = (lambda: gen.standard_normal(c).astype(dt))
    args = dict(x=(gen.standard_normal(shape) * 2 + 1).astype(dt),
                running_mean=vec() if tracked else None,
                running_var=(gen.random(c) + 0.2).astype(dt) if tracked else None,
                weight=vec() if draw(st.booleans()) else None,
                bias=vec() if draw(st.booleans()) else None, training=training,
                momentum=draw(st.sampled_from([0.1, 0.5, 1.0, 0.0])),
                eps=draw(st.sampled_from([1e-5, 1e-3, 0.5])), return_stats=True)
    outs = ("running_mean", "running_var") if training and tracked else ()
    for name, shp in (("out", shape), ("save_mean", (c,)), ("save_invstd", (c,))):
        if draw(st.booleans()):
            args[name] = np.full(shp, np.nan, dt)  # written, never read
            outs += (name,)

    def call(g):
        y, mean, invstd = F.batch_norm(**g)
        return y, mean, invstd, g["running_mean"], g["running_var"]

    def ref(g):
        x = g["x"]
        need(x.dtype in FLOATS and x.ndim >= 2, "(N, C, ...) floats")
        c = x.shape[1]
        rm, rv = _channel(g["running_mean"], x), _channel(g["running_var"], x)
        w, b = _channel(g["weight"], x), _channel(g["bias"], x)
        for name, shp in (("out", x.shape), ("save_mean", (c,)), ("save_invstd", (c,))):
            need(g.get(name) is None or g[name].shape == shp)
        m = x.size // max(c, 1)
        need(m >= 1, "values per channel")
        x64 = _f(x)
        if g["training"]:
            need(m > 1, "more than one value per channel when training")
            mean, var = x64.mean(axis=_axes(x)), x64.var(axis=_axes(x))
            if rm is not None:
                k = g["momentum"]
                rm = (1 - k) * rm + k * mean
                rv = (1 - k) * rv + k * var * m / (m - 1)  # the unbiased variance
        else:
            need(rm is not None and rv is not None, "running statistics for evaluation")
            mean, var = rm, rv
        invstd = 1 / np.sqrt(var + g["eps"])
        y = (x64 - _per_channel(mean, x)) * _per_channel(invstd, x)
        y = y * (1 if w is None else _per_channel(w, x)) + (0 if b is None else _per_channel(b, x))
        return y, mean, invstd, rm, rv

    floats = ("x",) + tuple(k for k in ("weight", "bias") if args[k] is not None) + \
        (("running_mean", "running_var") if tracked and not training else ())
    return Case(call, ref, args, floats, outs, dtype=dt)


@op("batch_norm_backward")
@st.composite
def batch_norm_backward_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    shape = _bn_shape(draw)
    c = shape[1]
    gen = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = (gen.standard_normal(shape) * 2 + 1).astype(dt)
    training = x.size // c > 1 and draw(st.booleans())
    if training:  # the batch's own statistics, as batch_norm(..., return_stats=True) gives
        mean, invstd = _f(x).mean(axis=_axes(x)), 1 / np.sqrt(_f(x).var(axis=_axes(x)) + 1e-5)
    else:
        mean, invstd = gen.standard_normal(c), gen.random(c) + 0.5
    acc = draw(st.booleans())
    need_in, need_w, need_b = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    old = (lambda shp: gen.standard_normal(shp).astype(dt)) if acc else \
        (lambda shp: np.full(shp, np.nan, dt))  # overwritten, never read
    args = dict(grad_out=gen.standard_normal(shape).astype(dt), x=x, mean=mean.astype(dt),
                invstd=invstd.astype(dt),
                weight=gen.standard_normal(c).astype(dt) if draw(st.booleans()) else None,
                training=training, need_input=need_in, need_weight=need_w, need_bias=need_b,
                grad_input=np.full(shape, np.nan, dt) if need_in and draw(st.booleans()) else None,
                grad_weight=old((c,)) if need_w and (acc or draw(st.booleans())) else None,
                grad_bias=old((c,)) if need_b and (acc or draw(st.booleans())) else None,
                accumulate=acc)

    def ref(g):
        x, dy = g["x"], g["grad_out"]
        need(x.dtype in FLOATS and x.ndim >= 2 and dy.shape == x.shape, "(N, C, ...) floats")
        c = x.shape[1]
        mean, invstd, w = (_channel(g[k], x) for k in ("mean", "invstd", "weight"))
        need(mean is not None and invstd is not None)
        for name, shp, flag in (("grad_input", x.shape, "need_input"),
                                ("grad_weight", (c,), "need_weight"),
                                ("grad_bias", (c,), "need_bias")):
            need(g[name] is None or not g[flag] or g[name].shape == shp)
        need(not g["accumulate"] or ((not g["need_weight"] or g["grad_weight"] is not None)
                                     and (not g["need_bias"] or g["grad_bias"] is not None)))
        m = x.size // c
        x64, dy64 = _f(x), _f(dy)
        xhat = (x64 - _per_channel(mean, x)) * _per_channel(invstd, x)
        sdy, sdyx = dy64.sum(axis=_axes(x)), (dy64 * xhat).sum(axis=_axes(x))
        scale = _per_channel(invstd * (1 if w is None else w), x)
        if g["training"]:  # through the batch statistics
            dx = scale * (dy64 - _per_channel(sdy, x) / m - xhat * _per_channel(sdyx, x) / m)
        else:
            dx = scale * dy64
        gw = sdyx + (_f(g["grad_weight"]) if g["accumulate"] else 0)
        gb = sdy + (_f(g["grad_bias"]) if g["accumulate"] else 0)
        return (dx if g["need_input"] else None, gw if g["need_weight"] else None,
                gb if g["need_bias"] else None)

    floats = ("grad_out", "x", "mean", "invstd") + (("weight",) if args["weight"] is not None
                                                     else ())
    outs = tuple(k for k in ("grad_input", "grad_weight", "grad_bias") if args[k] is not None)
    return Case(lambda g: F.batch_norm_backward(**g), ref, args, floats, outs, dtype=dt)


# -- interpolation -----------------------------------------------------------------------

def _axis_taps(n_in, n_out, scale, mode, align_corners):
    """For each output index d of one axis: the two input indices it reads and their
    weights (i0, i1, w0, w1), by PyTorch's index rules (nearest: i1 = i0, w1 = 0)."""
    d = np.arange(n_out)
    if mode == "nearest":
        if n_out == n_in:
            src = d
        elif n_out == 2 * n_in:
            src = d >> 1
        else:  # PyTorch computes this in float whatever the data type
            r = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
            src = np.minimum(np.floor(d.astype(np.float32) * r).astype(np.int64), n_in - 1)
        return src, src, np.ones(n_out), np.zeros(n_out)
    if n_out == n_in:
        return d, d, np.ones(n_out), np.zeros(n_out)
    if align_corners:
        r = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        src = r * d
    else:
        r = 1.0 / scale if scale else n_in / n_out
        src = np.maximum(r * (d + 0.5) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0, 0.0, 1.0)
    return i0, np.minimum(i0 + 1, n_in - 1), 1 - lam, lam


def _interp_plan(shape, g):
    """Output sizes and per-axis matrices for an input of ``shape``, or Refused."""
    mode, ac = g["mode"], g["align_corners"]
    need(len(shape) in (3, 4), "(N, C, L) or (N, C, H, W)")
    need(mode == "nearest" or (mode == "linear" and len(shape) == 3)
         or (mode == "bilinear" and len(shape) == 4), "mode and rank")
    need(mode != "nearest" or ac is None, "align_corners only with the linear modes")
    size, sf, rsf = g["size"], g["scale_factor"], g["recompute_scale_factor"]
    need((size is None) != (sf is None), "exactly one of size and scale_factor")
    dims = len(shape) - 2
    n_in = shape[2:]

    def per_axis(v):
        items = tuple(v) if isinstance(v, (tuple, list)) else (v,) * dims
        need(len(items) == dims)
        return items

    if size is not None:
        need(not rsf, "recompute_scale_factor with an explicit size")
        n_out = per_axis(size)
        need(all(isinstance(v, (int, np.integer)) for v in n_out))
        scales = (None,) * dims
    else:
        factors = per_axis(sf)
        need(all(np.isfinite(f) and f > 0 for f in factors), "positive finite scale_factor")
        n_out = tuple(int(np.floor(float(i) * f)) for i, f in zip(n_in, factors))
        scales = (None,) * dims if rsf else factors
    need(min(n_in) >= 1 and min(n_out) >= 1 and max(n_out) <= 2**31, "sizes")
    taps = [_axis_taps(i, o, s, mode, bool(ac)) for i, o, s in zip(n_in, n_out, scales)]
    return tuple(shape[:2]) + tuple(n_out), taps


def _resample(v, taps):
    """Forward: along each spatial axis, out[d] = w0[d]·v[i0[d]] + w1[d]·v[i1[d]] (a tap
    read with weight 0 still spreads NaN, as PyTorch; the pixels not read do not)."""
    for axis, (i0, i1, w0, w1) in zip(range(2, v.ndim), taps):
        shape = [1] * v.ndim
        shape[axis] = -1
        v = w0.reshape(shape) * np.take(v, i0, axis) + w1.reshape(shape) * np.take(v, i1, axis)
    return v


def _resample_adjoint(g, taps, in_shape):
    """Backward: every output gradient added to the two inputs it read, times the weights."""
    for axis, (i0, i1, w0, w1) in reversed(list(zip(range(2, g.ndim), taps))):
        shape = [1] * g.ndim
        shape[axis] = -1
        moved = np.zeros(g.shape[:axis] + (in_shape[axis],) + g.shape[axis + 1:])
        tgt = np.moveaxis(moved, axis, 0)  # a view: add.at along the first axis
        np.add.at(tgt, i0, np.moveaxis(w0.reshape(shape) * g, axis, 0))
        np.add.at(tgt, i1, np.moveaxis(w1.reshape(shape) * g, axis, 0))
        g = moved
    return g


@st.composite
def _interp_args(draw):
    rank = draw(st.sampled_from([3, 4]))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) + tuple(
        draw(st.integers(1, 7)) for _ in range(rank - 2))
    mode = draw(st.sampled_from(["nearest", "linear" if rank == 3 else "bilinear"]))
    ac = None if mode == "nearest" else draw(st.sampled_from([None, True, False]))
    factors = st.sampled_from([0.5, 0.7, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 1 / 3, 1.75])
    kw = dict(size=None, scale_factor=None, mode=mode, align_corners=ac,
              recompute_scale_factor=None)
    fs = tuple(draw(factors) for _ in range(rank - 2))
    per_axis = draw(st.booleans())
    if not per_axis:
        fs = (fs[0],) * (rank - 2)
    if draw(st.booleans()) and all(int(i * f) >= 1 for i, f in zip(shape[2:], fs)):
        kw["scale_factor"] = fs if per_axis else fs[0]
        kw["recompute_scale_factor"] = draw(st.sampled_from([None, True, False]))
    else:  # an explicit size (also where a factor would shrink an axis to nothing)
        sizes = tuple(draw(st.integers(1, 12)) for _ in range(rank - 2))
        kw["size"] = sizes if per_axis else sizes[0]
    return shape, kw


_INTERP_ABSURD = {"size": [0, -1, HUGE, (1, -2)], "scale_factor": [0.0, -1.0, float("inf"),
                                                                   float("nan"), 1e30]}


@op("interpolate")
@st.composite
def interpolate_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    shape, kw = draw(_interp_args())
    out_shape, _ = _interp_plan(shape, kw)
    args = dict(input=_data(draw, shape, dt), **kw)
    outs = ()
    if draw(st.booleans()):
        args["out"], outs = np.empty(out_shape, dt), ("out",)
    names = ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor")

    def call(g):
        y = F.interpolate(**g)
        return y, F.interpolate_output_shape(g["input"].shape, **{k: g[k] for k in names})

    def ref(g):
        x = g["input"]
        need(x.dtype in FLOATS)
        oshape, taps = _interp_plan(x.shape, g)
        need(g.get("out") is None or g["out"].shape == oshape)
        return _resample(_f(x), taps), oshape

    return Case(call, ref, args, ("input",), outs, absurd=_INTERP_ABSURD, dtype=dt)


@op("interpolate_backward")
@st.composite
def interpolate_backward_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    shape, kw = draw(_interp_args())
    out_shape, _ = _interp_plan(shape, kw)
    args = dict(grad_out=_data(draw, out_shape, dt), input_shape=shape, **kw)
    outs = ()
    if draw(st.booleans()):
        args["out"], outs = np.full(shape, np.nan, dt), ("out",)  # overwritten, never read

    def ref(g):
        go = g["grad_out"]
        need(go.dtype in FLOATS)
        in_shape = tuple(g["input_shape"])
        oshape, taps = _interp_plan(in_shape, g)
        need(go.shape == oshape)
        need(g.get("out") is None or g["out"].shape == in_shape)
        return _resample_adjoint(_f(go), taps, in_shape)

    return Case(lambda g: F.interpolate_backward(**g), ref, args, ("grad_out",), outs,
                absurd=_INTERP_ABSURD, dtype=dt)
