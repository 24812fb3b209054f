"""Argument helpers shared by every ``functional`` module, and the compiled extension.

``_k`` is the extension module ``neuropil._kernels``; the ``functional`` package is the
only Python code that imports it (DESIGN.md, STYLE rule 7).
"""
from __future__ import annotations

import numpy as np

from .. import _kernels as _k

_REDUCTION = {"mean": 0, "sum": 1, "none": 2}


def _as_array(x, fn: str, name: str) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if x is None:
        raise TypeError(f"{fn}: {name} must be an array, got None")
    try:
        return np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{fn}: {name} could not be converted to an array: {err}") from None



def _float_input(x, fn: str, name: str) -> np.ndarray:
    """A C-contiguous float array: lists are converted (ints -> float64), arrays are not cast."""
    if not isinstance(x, np.ndarray):
        x = _as_array(x, fn, name)
        if x.dtype.kind in "biu":
            x = x.astype(np.float64)
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    return x


def _out_for(x: np.ndarray, out, fn: str) -> np.ndarray:
    if out is None:
        return np.empty(x.shape, x.dtype if x.dtype.kind == "f" else np.float64)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{fn}: out must be a numpy.ndarray, got {type(out).__name__}")
    return out


def _reduction_code(reduction, fn: str) -> int:
    try:
        return _REDUCTION[reduction]
    except (KeyError, TypeError):
        raise ValueError(f"{fn}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}") \
            from None


def _pair(v, fn: str, name: str, minimum: int) -> tuple:
    """``v`` as a pair of ints >= ``minimum`` (an int means the same for H and W)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (int(v), int(v))
    elif isinstance(v, (tuple, list)) and len(v) == 2 and all(
            isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in v):
        v = (int(v[0]), int(v[1]))
    else:
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {v!r}")
    if v[0] < minimum or v[1] < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {v!r}")
    if max(v) > 2**31:
        raise ValueError(f"{fn}: {name} {v!r} is absurd (more than 2**31)")
    return v


def _float_tensor(x, fn: str, name: str, ndim: int, expected: str) -> np.ndarray:
    x = _as_array(x, fn, name)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D with shape {expected}, got shape {x.shape}")
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    return x


def _out_array(out, shape, dtype, fn: str, name: str = "out") -> np.ndarray:
    if out is None:
        if float(np.prod([float(s) for s in shape])) * np.dtype(dtype).itemsize > 2.0**40:
            raise ValueError(f"{fn}: {name} would have the absurd shape {tuple(shape)}")
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray, got {type(out).__name__}")
    return out


