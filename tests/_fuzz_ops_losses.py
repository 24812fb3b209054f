"""Fuzz table (see _fuzz_base.py): one-hot encoding and the losses.

Every loss is drawn with each reduction ('mean', 'sum', 'none' with or without
``out=``), with or without a fused ``grad=``; the class losses over (N, C), (N, C,
d1, ...) and unbatched (C,) inputs, with class weights and ``ignore_index``.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from neuropil import functional as F

from _fuzz_base import FLOATS, HUGE, Case, _data, _f, dims, need, op

REDUCTIONS = ("mean", "sum", "none")


@op("one_hot")
@st.composite
def one_hot_case(draw):
    c = draw(dims)
    labels = np.array(draw(st.lists(st.integers(0, c - 1), min_size=1, max_size=12)))

    def ref(g):
        return np.eye(g["num_classes"], dtype=np.float32)[g["labels"]]

    return Case(lambda g: F.one_hot(**g), ref, dict(labels=labels, num_classes=c),
                absurd={"num_classes": [0, -1, -HUGE, HUGE * HUGE]})


def _finish(per, grad_sum, reduction, norm, want_grad, out):
    """(value, grad) of a loss from its per-element losses and the gradient of their
    sum; 'mean' divides both by ``norm``."""
    if reduction == "none":
        need(out is None or out.shape == per.shape, "out must have the losses' shape")
        value = per
    else:
        need(out is None, "out= needs reduction='none'")
        value = per.sum() / norm if reduction == "mean" else per.sum()
    k = 1.0 / norm if reduction == "mean" else 1.0
    return value, (grad_sum * k if want_grad else None)


def _loss_call(fn):
    def call(g):
        value = fn(**g)
        return value, (g["grad"] if g["grad"] is not None else None)
    return call


# -- class losses: cross_entropy (logits) and nll_loss (log-probabilities) -------------

def _labels_ok(t, shape):
    need(t.dtype.kind in "iu" and t.dtype != np.bool_, "labels must be integers")
    need(t.shape == shape, "labels must have the input's shape without axis 1")


def _class_loss_ref(kind, g):
    x, t, w, red = g["input"], np.asarray(g["target"]), g["weight"], g["reduction"]
    need(x.dtype in FLOATS and x.ndim >= 1 and x.shape[-1 if x.ndim == 1 else 1] >= 1)
    need(red in REDUCTIONS)
    need(g["grad"] is None or g["grad"].shape == x.shape, "grad must have the input's shape")
    unbatched = x.ndim == 1
    xb = _f(x).reshape(1, -1) if unbatched else _f(x)
    c = xb.shape[1]
    if w is not None:
        need(w.dtype.kind == "f" and w.shape == (c,), "weight must be (C,) floats")
    wc = np.ones(c) if w is None else _f(w)
    xl = np.moveaxis(xb, 1, -1)  # (N, d..., C): classes last
    if kind == "cross_entropy":
        m = xl.max(-1, keepdims=True)
        lse = m + np.log(np.exp(xl - m).sum(-1, keepdims=True))
        logp, p = xl - lse, np.exp(xl - lse)
    else:
        logp = xl
    if t.dtype.kind == "f":  # probabilities / one-hot, cross_entropy only
        need(kind == "cross_entropy" and t.shape == x.shape, "probabilities: the input's shape")
        tl = np.moveaxis(_f(t).reshape(xb.shape), 1, -1)
        per = -(wc * np.where(tl != 0, tl * logp, 0.0)).sum(-1)  # 0 * log 0 counts 0
        grad = p * (wc * tl).sum(-1, keepdims=True) - wc * tl
        norm = per.size
    else:
        _labels_ok(t, () if unbatched else x.shape[:1] + x.shape[2:])
        tl = t.reshape(xl.shape[:-1]).astype(np.int64)
        ignored = tl == g["ignore_index"]
        need(np.all(ignored | ((tl >= 0) & (tl < c))), "label out of range")
        safe = np.where(ignored, 0, tl)
        onehot = np.eye(c)[safe]
        wy = np.where(ignored, 0.0, wc[safe])
        picked = np.take_along_axis(logp, safe[..., None], -1)[..., 0]
        per = np.where(ignored, 0.0, -wy * picked)  # an ignored position counts nothing
        grad = wy[..., None] * ((p if kind == "cross_entropy" else 0.0) - onehot)
        grad = np.where(ignored[..., None], 0.0, grad)
        norm = wy.sum()  # PyTorch's weighted mean; all ignored: 0/0 = NaN
    if unbatched:
        per = per.reshape(())
    with np.errstate(invalid="ignore", divide="ignore"):
        value, grad = _finish(per, grad, red, norm, g["grad"] is not None, g["out"])
    if grad is not None:
        if red == "mean" and norm == 0:
            grad = np.zeros_like(grad)  # nothing counted: no gradient
        grad = np.moveaxis(grad.reshape(xl.shape), -1, 1).reshape(x.shape)
    return value, grad


def _class_loss_case(kind):
    @st.composite
    def case(draw):
        dt = draw(st.sampled_from(FLOATS))
        c = draw(st.integers(1, 6))
        unbatched = draw(st.integers(0, 5)) == 0
        shape = (c,) if unbatched else (draw(st.integers(1, 4)), c) + tuple(
            draw(st.lists(st.integers(1, 3), max_size=2)))
        red = draw(st.sampled_from(REDUCTIONS))
        x = _data(draw, shape, dt, 3.0)
        if kind == "nll_loss":
            x = F.log_softmax(np.moveaxis(x.reshape((1,) * unbatched + shape), 1, -1))
            x = np.ascontiguousarray(np.moveaxis(x, -1, 1)).reshape(shape)
        weight = (np.random.default_rng(draw(st.integers(0, 99))).uniform(0.2, 2.0, c).astype(dt)
                  if draw(st.booleans()) else None)
        ignore = draw(st.sampled_from([-100, 0, c - 1, 7]))
        lshape = () if unbatched else shape[:1] + shape[2:]
        probs = kind == "cross_entropy" and draw(st.integers(0, 3)) == 0
        if probs:
            t = np.random.default_rng(draw(st.integers(0, 99))).random(shape).astype(dt)
            t /= t.sum(axis=0 if unbatched else 1, keepdims=True)
        else:
            labels = draw(st.lists(st.integers(0, c - 1), min_size=int(np.prod(lshape)),
                                   max_size=int(np.prod(lshape))))
            t = np.array(labels, dtype=draw(st.sampled_from([np.int64, np.int32, np.uint8])))
            t = t.reshape(lshape)
            if draw(st.booleans()):  # some positions ignored (all of them at times)
                mask = np.random.default_rng(draw(st.integers(0, 99))).random(lshape) < 0.4
                t = np.where(mask, ignore, t.astype(np.int64))
        out = (np.empty(lshape, dt) if red == "none" and draw(st.booleans()) else None)
        grad = np.empty(shape, dt) if draw(st.integers(0, 4)) else None
        args = dict(input=x, target=t, reduction=red, weight=weight, ignore_index=ignore,
                    grad=grad, out=out)
        floats = ("input",) + (("target",) if probs else ()) + \
            (("weight",) if weight is not None else ())
        outs = (("grad",) if grad is not None else ()) + (("out",) if out is not None else ())
        return Case(_loss_call(getattr(F, kind)), lambda g: _class_loss_ref(kind, g), args,
                    floats, outs, absurd={"ignore_index": [2**63, -2**64]}, dtype=dt)
    return case


op("cross_entropy")(_class_loss_case("cross_entropy"))
op("nll_loss")(_class_loss_case("nll_loss"))


# -- pointwise losses ------------------------------------------------------------------

def _pointwise_loss_ref(name, g):
    x, t = g["input"], g["target"]
    need(x.dtype in FLOATS and t.dtype.kind == "f", "float input and target")
    need(g["reduction"] in REDUCTIONS)
    need(x.shape == t.shape, "target must have the input's shape")
    need(g["grad"] is None or g["grad"].shape == x.shape, "grad must have the input's shape")
    x, t = _f(x), _f(t)
    with np.errstate(all="ignore"):
        if name == "mse_loss":
            per, grad = (x - t) ** 2, 2 * (x - t)
        elif name == "l1_loss":
            per, grad = np.abs(x - t), np.sign(x - t)  # 0 where equal (PyTorch)
        elif name == "binary_cross_entropy":
            need(not np.any((x < 0) | (x > 1)), "probabilities in [0, 1]")  # NaN passes
            per = -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log1p(-x), -100))
            grad = (x - t) / np.maximum(x * (1 - x), 1e-12)
        else:
            per = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
            grad = 1 / (1 + np.exp(-x)) - t
        return _finish(per, grad, g["reduction"], max(x.size, 1), g["grad"] is not None,
                       g["out"])


def _pointwise_loss_case(name):
    @st.composite
    def case(draw):
        dt = draw(st.sampled_from(FLOATS))
        shape = tuple(draw(st.lists(dims, min_size=0, max_size=3)))
        red = draw(st.sampled_from(REDUCTIONS))
        gen = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        if name == "binary_cross_entropy":
            x = gen.random(shape)
            x = np.where(gen.random(shape) < 0.1, np.round(x), x).astype(dt)  # exact 0 and 1
        else:
            x = (gen.standard_normal(shape) * 3).astype(dt)
        if name in ("mse_loss", "l1_loss"):
            t = gen.standard_normal(shape).astype(dt)
            if name == "l1_loss" and x.ndim:  # some ties: the gradient is 0 there
                t = np.where(gen.random(shape) < 0.2, x, t).astype(dt)
        else:
            t = gen.random(shape).astype(dt)
        x, t = np.array(x, dt), np.array(t, dt)  # 0-d arrays for shape (), not scalars
        out = np.empty(shape, dt) if red == "none" and draw(st.booleans()) else None
        grad = np.empty(shape, dt) if draw(st.integers(0, 4)) else None
        args = dict(input=x, target=t, reduction=red, grad=grad, out=out)
        outs = (("grad",) if grad is not None else ()) + (("out",) if out is not None else ())
        return Case(_loss_call(getattr(F, name)), lambda g: _pointwise_loss_ref(name, g), args,
                    ("input", "target"), outs, dtype=dt)
    return case


for _name in ("mse_loss", "l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"):
    op(_name)(_pointwise_loss_case(_name))


# -- the input gradient of a reduction='none' loss ------------------------------------

@op("loss_backward")
@st.composite
def loss_backward_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    class_axis = draw(st.booleans())
    if class_axis:
        shape = (draw(st.integers(1, 6)),) if draw(st.integers(0, 4)) == 0 else \
            (draw(st.integers(1, 4)), draw(st.integers(1, 5))) + tuple(
                draw(st.lists(st.integers(1, 3), max_size=2)))
        gshape = () if len(shape) == 1 else shape[:1] + shape[2:]
    else:
        shape = gshape = tuple(draw(st.lists(dims, min_size=0, max_size=3)))
    out = np.empty(shape, dt) if draw(st.booleans()) else None
    args = dict(grad=_data(draw, shape, dt), grad_out=_data(draw, gshape, dt),
                class_axis=class_axis, out=out)

    def ref(g):
        gr, go = g["grad"], g["grad_out"]
        need(gr.dtype in FLOATS and go.dtype.kind == "f")
        if g["class_axis"]:
            need(gr.ndim >= 1, "the gradient has a class axis")
            need(go.shape == (() if gr.ndim == 1 else gr.shape[:1] + gr.shape[2:]))
            go = _f(go).reshape(1, *go.shape) if gr.ndim == 1 else _f(go)[:, None]
        else:
            need(go.shape == gr.shape)
        need(g["out"] is None or g["out"].shape == gr.shape)
        return _f(gr) * _f(go)

    outs = ("out",) if out is not None else ()
    return Case(lambda g: F.loss_backward(**g), ref, args, ("grad", "grad_out"), outs, dtype=dt)
