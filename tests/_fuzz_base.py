"""Shared pieces of the fuzz tables (tests/_fuzz_ops*.py): the Case record, the
registry ``ALL_OPS`` and small helpers. Each table module registers its rows with
``@op(name)``; tests/test_fuzz_functional.py imports every table module.

Each entry draws one valid call (shapes, arguments, seeded data) and says how to
check it: ``call(args)`` runs neuropil, ``ref(args)`` is a plain NumPy reference
that refuses (raises) what the op's contract refuses. ``floats`` names the float
array inputs the invalid-input properties may mutate, ``outs`` the arrays the op
writes (``out=``, gradients, optimizer state updated in place), ``absurd`` maps an
integer argument to values that must be refused. A new op is one entry in a table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

FLOATS = (np.float32, np.float64)
HUGE = 2**40  # a size no machine here can allocate


@dataclass
class Case:
    call: Callable[[dict], Any]
    ref: Callable[[dict], Any]
    args: dict
    floats: tuple = ()
    outs: tuple = ()
    absurd: dict = field(default_factory=dict)
    dtype: Any = np.float64


class Refused(ValueError):
    """A reference refusing an argument the op's contract refuses."""


def need(cond, what="invalid argument"):
    if not cond:
        raise Refused(what)


def _data(draw, shape, dtype, scale=1.0):
    seed = draw(st.integers(0, 2**32 - 1))
    # np.array: a 0-d ndarray for shape (), never a NumPy scalar (which ops take as a number)
    return np.array(np.random.default_rng(seed).standard_normal(shape) * scale, dtype=dtype)


def _away_from_zero(a, gap=1e-3):
    # kinks (ReLU at 0) are where float32 and float64 may legitimately disagree
    return np.where(np.abs(a) < gap, gap, a).astype(a.dtype)


dims = st.integers(1, 9)
ALL_OPS: dict = {}


def op(name):
    def register(fn):
        ALL_OPS[name] = fn
        return fn
    return register


def _f(a):
    return np.asarray(a, dtype=np.float64)


def _pair(v):
    return (v, v) if isinstance(v, (int, np.integer)) else tuple(v)


def _reduce(v, reduction):
    return v.mean() if reduction == "mean" else v.sum()
