"""Utilities on parameters: gradient clipping."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from .module import Parameter

__all__ = ["clip_grad_norm_", "sample_logits"]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale the gradients of ``parameters`` in place so their joint norm is at most ``max_norm``.

    PyTorch semantics: ``total = ||concat(p.grad)||`` (``norm_type`` 2 or inf); if
    ``total > max_norm`` every gradient is multiplied by ``max_norm / (total + 1e-6)``.
    Returns ``total`` (before clipping). A non-finite total leaves the gradients as they
    are. ``parameters`` is a Parameter or an iterable of them (e.g. ``model.parameters()``).
    """
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    params = list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"clip_grad_norm_: parameters[{i}] must be a Parameter, got "
                            f"{type(p).__name__}")
    if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float, np.floating)) \
            or not max_norm >= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be a non-negative number, "
                         f"got {max_norm!r}")
    norm_type = float(norm_type)
    if norm_type == 2.0:
        total = math.sqrt(sum(F.sum_squares(p.grad) for p in params))
    elif norm_type == math.inf:
        total = max((float(np.abs(p.grad).max()) for p in params if p.grad.size), default=0.0)
    else:
        raise ValueError(f"clip_grad_norm_: norm_type must be 2 or inf, got {norm_type!r}")
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1.0:
        for p in params:
            F.scale_(p.grad, coef)
    return total


def sample_logits(logits, temperature: float = 1.0, rng=None) -> np.ndarray:
    """Draw one class per row of ``logits (N, C)`` (or ``(C,)``) from softmax(logits / temperature).

    ``temperature`` > 0: below 1 sharpens the distribution (towards argmax), above 1
    flattens it; ``temperature=0`` returns the argmax. ``rng``: a numpy Generator, an int
    seed, or None (neuropil's global generator). Returns int64 indices of shape ``(N,)``
    (a 0-d array for 1-D input). Used for generation (one-to-many models feeding their
    own output back); not on the training path.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim not in (1, 2) or z.shape[-1] == 0:
        raise ValueError(f"sample_logits: logits must have shape (N, C) or (C,) with C >= 1, "
                         f"got {z.shape}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not temperature >= 0:
        raise ValueError(f"sample_logits: temperature must be a number >= 0, got {temperature!r}")
    z2 = z.reshape(-1, z.shape[-1])
    if temperature == 0:
        out = z2.argmax(axis=1)
    else:
        s = z2 / float(temperature)
        s = s - s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        u = get_rng(rng).random((z2.shape[0], 1))
        out = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), z2.shape[1] - 1)
    out = out.astype(np.int64)
    return out.reshape(()) if z.ndim == 1 else out
