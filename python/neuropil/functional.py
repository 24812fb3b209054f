"""NumPy-in, NumPy-out wrappers over neuropil's C++ kernels.

This is the only module that imports the compiled extension. Each function
allocates its output with ``numpy.empty`` (or writes into ``out=``), makes
any layout copy visibly here, and lets the binding validate the rest.
"""
from __future__ import annotations

import numpy as np

from . import _kernels as _k

__all__ = ["gemm", "sgd_update_", "adam_update_"]


def _as_array(x, fn: str, name: str) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if x is None:
        raise TypeError(f"{fn}: {name} must be an array, got None")
    try:
        return np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{fn}: {name} could not be converted to an array: {err}") from None


def _matrix_operand(x: np.ndarray, trans: bool):
    """Return (C-contiguous array, trans flag) describing the same op(x).

    A Fortran-ordered matrix is the transpose of a C-ordered one, so it is
    passed without a copy by flipping the flag; other layouts are copied.
    """
    if x.ndim == 2 and not x.flags.c_contiguous:
        if x.flags.f_contiguous:
            return x.T, not trans
        return np.ascontiguousarray(x), trans
    return x, trans


def gemm(a, b, *, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0,
         beta: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
    """``alpha * op(a) @ op(b) + beta * out`` for float32 or float64 matrices.

    ``op(x)`` is ``x.T`` when the matching ``trans_`` flag is set. ``a`` is
    ``(M, K)`` (``(K, M)`` transposed), ``b`` is ``(K, N)`` (``(N, K)``
    transposed) and the result ``(M, N)``. With ``out`` the result is written
    there in place (``out`` must be C-contiguous, writeable, of the same
    dtype, and must not overlap ``a`` or ``b``); without it a new array is
    returned and ``beta`` must be 0. With ``beta == 0`` the old contents of
    ``out`` are never read, so NaN there cannot leak into the result.
    Non-contiguous inputs are accepted (copied first); Fortran-ordered ones
    are used in place.
    """
    a = _as_array(a, "gemm", "a")
    b = _as_array(b, "gemm", "b")
    if a.ndim != 2:
        raise ValueError(f"gemm: a must be 2-D with shape {'(K, M)' if trans_a else '(M, K)'}, "
                         f"got shape {a.shape}")
    if b.ndim != 2:
        raise ValueError(f"gemm: b must be 2-D with shape {'(N, K)' if trans_b else '(K, N)'}, "
                         f"got shape {b.shape}")
    a_c, ta = _matrix_operand(a, bool(trans_a))
    b_c, tb = _matrix_operand(b, bool(trans_b))
    if out is None:
        if beta != 0:
            raise ValueError(f"gemm: beta={beta!r} needs out= (there is nothing to scale)")
        m = a.shape[1] if trans_a else a.shape[0]
        n = b.shape[0] if trans_b else b.shape[1]
        out = np.empty((m, n), dtype=a.dtype if a.dtype in (np.float32, np.float64) else np.float64)
    elif not isinstance(out, np.ndarray):
        raise TypeError(f"gemm: out must be a numpy.ndarray, got {type(out).__name__}")
    _k.gemm(a_c, b_c, out, ta, tb, float(alpha), float(beta))
    return out


# ---------------------------------------------------------------------------
# Optimizer updates (fused, in place; formulas in cpp/include/neuropil/optim.h)
# ---------------------------------------------------------------------------

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
