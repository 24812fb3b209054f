"""The loss table for tests/test_fuzz_losses.py: one LossRow per loss class.

A row draws constructor arguments (reduction, class weights, ignore_index) and a
(prediction, target) pair; the expected loss and gradient come from the references
of the functional fuzz table (_fuzz_ops_losses.py), which follow PyTorch's
definitions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import strategies as st

from neuropil import nn

import _fuzz_ops_losses as FL

REDUCTIONS = ("mean", "sum", "none")


@dataclass
class LossRow:
    ctor: Callable              # draw -> kwargs
    make: Callable              # kwargs -> loss module
    sample: Callable            # (draw, kwargs, dtype, generator) -> (pred, target)
    ref: Callable               # (loss, pred, target) -> (value, gradient of the value)
    class_axis: bool = False    # the gradient has the class axis 1 that the losses lack
    bad_ctor: list = field(default_factory=list)
    bad_inputs: tuple = ()      # mutation names the row supports (see the test)


def _class_ctor(draw):
    kw = dict(reduction=draw(st.sampled_from(REDUCTIONS)))
    if draw(st.booleans()):
        kw["ignore_index"] = draw(st.sampled_from([-100, 0, 1, 5]))
    return kw


def _class_make(cls):
    def make(weight_seed=None, classes=None, **kw):
        if weight_seed is not None:
            kw["weight"] = np.random.default_rng(weight_seed).uniform(0.2, 2.0, classes)
        return cls(**kw)
    return make


@st.composite
def _class_kwargs(draw):
    kw = _class_ctor(draw)
    kw["classes"] = draw(st.integers(1, 5))
    if draw(st.booleans()):
        kw["weight_seed"] = draw(st.integers(0, 99))
    return kw


def _class_sample(kind):
    def sample(draw, kw, dtype, gen):
        c = kw["classes"]
        shape = (c,) if draw(st.integers(0, 5)) == 0 else (draw(st.integers(1, 4)), c) + tuple(
            draw(st.lists(st.integers(1, 3), max_size=2)))
        x = gen.standard_normal(shape) * 2
        if kind == "nll_loss":  # log-probabilities over the class axis
            axis = 0 if len(shape) == 1 else 1
            x = x - np.log(np.exp(x).sum(axis=axis, keepdims=True))
        lshape = () if len(shape) == 1 else shape[:1] + shape[2:]
        if kind == "cross_entropy" and draw(st.integers(0, 3)) == 0:
            t = gen.random(shape)
            t = (t / t.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)).astype(dtype)
        else:
            t = gen.integers(0, c, lshape)
            ii = kw.get("ignore_index", -100)
            if draw(st.booleans()):  # some positions ignored, one kept (a finite mean)
                t = np.where(gen.random(lshape) < 0.3, ii, t)
                t.reshape(-1)[:1] = 0 if ii != 0 else min(1, c - 1)
                if ii == 0 and c == 1:
                    t = np.full(lshape, ii)  # every position ignored: the mean is NaN
            t = np.asarray(t, dtype=draw(st.sampled_from([np.int64, np.int32])))
        return x.astype(dtype), t
    return sample


def _class_ref(kind):
    def ref(loss, pred, target):
        g = dict(input=pred, target=target, reduction=loss.reduction, weight=loss.weight,
                 ignore_index=loss.ignore_index, grad=np.empty(pred.shape), out=None)
        return FL._class_loss_ref(kind, g)
    return ref


def _pointwise_sample(name):
    def sample(draw, kw, dtype, gen):
        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
        if name == "binary_cross_entropy":  # away from 0 and 1: finite differences stay inside
            x = 0.05 + 0.9 * gen.random(shape)
        else:
            x = gen.standard_normal(shape) * 2
        t = gen.standard_normal(shape) if name in ("mse_loss", "l1_loss") else gen.random(shape)
        if name == "l1_loss":  # no ties: |x - t| has a kink there
            t = np.where(np.abs(x - t) < 1e-3, t + 0.01, t)
        return x.astype(dtype), t.astype(dtype)
    return sample


def _pointwise_ref(name):
    def ref(loss, pred, target):
        g = dict(input=pred, target=target, reduction=loss.reduction, grad=np.empty(pred.shape),
                 out=None)
        return FL._pointwise_loss_ref(name, g)
    return ref


_BAD_REDUCTION = [dict(reduction="avg"), dict(reduction=None), dict(reduction="MEAN")]
_BAD_CLASS = _BAD_REDUCTION + [dict(weight_seed=None, weight=np.ones((2, 2))),
                               dict(weight_seed=None, weight=[]),
                               dict(weight_seed=None, weight=[1.0, float("nan")]),
                               dict(weight_seed=None, weight="mean"),
                               dict(ignore_index=1.5), dict(ignore_index="-100")]


def _class_row(cls, kind):
    return LossRow(ctor=_class_kwargs(), make=_class_make(cls), sample=_class_sample(kind),
                   ref=_class_ref(kind), class_axis=True, bad_ctor=_BAD_CLASS,
                   bad_inputs=("target shape", "label range", "complex", "integer input",
                               "float labels" if kind == "nll_loss" else "target shape"))


def _pointwise_row(cls, name, extra=()):
    return LossRow(ctor=st.fixed_dictionaries(dict(reduction=st.sampled_from(REDUCTIONS))),
                   make=lambda **kw: cls(**kw), sample=_pointwise_sample(name),
                   ref=_pointwise_ref(name), bad_ctor=_BAD_REDUCTION,
                   bad_inputs=("target shape", "complex", "integer input") + tuple(extra))


LOSSES = {
    "CrossEntropyLoss": _class_row(nn.CrossEntropyLoss, "cross_entropy"),
    "NLLLoss": _class_row(nn.NLLLoss, "nll_loss"),
    "MSELoss": _pointwise_row(nn.MSELoss, "mse_loss"),
    "L1Loss": _pointwise_row(nn.L1Loss, "l1_loss"),
    "BCELoss": _pointwise_row(nn.BCELoss, "binary_cross_entropy", ("outside [0, 1]",)),
    "BCEWithLogitsLoss": _pointwise_row(nn.BCEWithLogitsLoss,
                                        "binary_cross_entropy_with_logits"),
}
