"""Utilities on parameters: gradient clipping."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .module import Parameter

__all__ = ["clip_grad_norm_"]


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
