"""General matrix product (``cpp/include/neuropil/gemm.h``)."""
from __future__ import annotations

import numpy as np

from ._common import _as_array, _k

__all__ = ["gemm"]


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
    if type(out) is np.ndarray and type(a) is np.ndarray and type(b) is np.ndarray:
        # Fast path: the binding validates everything; only a layout it
        # refuses (non-contiguous, Fortran order) falls through to the copies.
        try:
            _k.gemm(a, b, out, trans_a, trans_b, alpha, beta)
            return out
        except ValueError:
            if a.flags.c_contiguous and b.flags.c_contiguous:
                raise
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

