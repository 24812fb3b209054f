"""Optimizer updates, fused and in place (formulas in cpp/include/neuropil/optim.h),
and the reductions gradient clipping uses."""
from __future__ import annotations

import numpy as np

from ._common import _as_array, _k

__all__ = ["sgd_update_", "adam_update_", "sum_squares", "scale_"]


def _update_array(x, fn: str, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray (updated in place), "
                        f"got {type(x).__name__}")
    return x


def sgd_update_(param: np.ndarray, grad: np.ndarray, momentum_buf: np.ndarray | None = None,
                *, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                nesterov: bool = False, weight_decay: float = 0.0, l1: float = 0.0,
                first_step: bool = False) -> np.ndarray:
    """One SGD step on ``param`` in place (PyTorch's ``torch.optim.SGD`` algorithm).

    ``g = grad + weight_decay*w + l1*sign(w)``; with ``momentum``:
    ``b = g`` on the first step, else ``b = momentum*b + (1-dampening)*g``, then
    ``g = g + momentum*b`` (nesterov) or ``g = b``; finally ``w -= lr*g``.
    ``param``, ``grad`` and ``momentum_buf`` (needed when ``momentum != 0``,
    updated in place) share one shape and float dtype and are C-contiguous.
    Returns ``param``.
    """
    fn = "sgd_update_"
    param = _update_array(param, fn, "param")
    grad = _update_array(grad, fn, "grad")
    if momentum_buf is not None:
        momentum_buf = _update_array(momentum_buf, fn, "momentum_buf")
    _k.sgd_update(param, grad, momentum_buf, float(lr), float(momentum), float(dampening),
                  float(weight_decay), float(l1), bool(nesterov), bool(first_step))
    return param


def adam_update_(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
                 exp_avg_sq: np.ndarray, max_exp_avg_sq: np.ndarray | None = None, *,
                 lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, step: int) -> np.ndarray:
    """One Adam step on ``param`` in place (PyTorch's ``torch.optim.Adam`` algorithm).

    ``g = grad + weight_decay*w``; ``m = b1*m + (1-b1)*g``; ``v = b2*v + (1-b2)*g²``;
    ``w -= lr/(1-b1^step) * m / (sqrt(v̂)/sqrt(1-b2^step) + eps)`` where ``v̂`` is
    ``v``, or with ``max_exp_avg_sq`` (AMSGrad) the running maximum of ``v``.
    ``step`` counts updates including this one (>= 1). All arrays share one
    shape and float dtype, are C-contiguous, and the state arrays are updated
    in place. Returns ``param``.
    """
    fn = "adam_update_"
    param = _update_array(param, fn, "param")
    grad = _update_array(grad, fn, "grad")
    exp_avg = _update_array(exp_avg, fn, "exp_avg")
    exp_avg_sq = _update_array(exp_avg_sq, fn, "exp_avg_sq")
    if max_exp_avg_sq is not None:
        max_exp_avg_sq = _update_array(max_exp_avg_sq, fn, "max_exp_avg_sq")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"{fn}: step must be an int, got {type(step).__name__}")
    _k.adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, float(lr), float(beta1),
                   float(beta2), float(eps), float(weight_decay), int(step))
    return param



def sum_squares(x) -> float:
    """``sum(x**2)`` accumulated in float64, thread-count independent."""
    return float(_k.sum_squares(np.ascontiguousarray(_as_array(x, "sum_squares", "x"))))


def scale_(x: np.ndarray, alpha: float) -> np.ndarray:
    """``x *= alpha`` in place (C-contiguous float array); returns ``x``."""
    _k.scale_inplace(x, float(alpha))
    return x

