"""Elementwise addition, concatenation and its adjoint, the split (``cpp/include/neuropil/tensor.h``).

What merge layers and the graph engine need: ``add`` sums two gradients where an output
feeds two layers; ``cat``/``split`` join and part feature maps along a dimension.
"""
from __future__ import annotations

import numpy as np

from ._common import _as_array, _k

__all__ = ["add", "cat", "split"]


def _float_array(x, fn: str, name: str) -> np.ndarray:
    x = _as_array(x, fn, name)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {x.dtype}")
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def add(a, b, *, out: np.ndarray | None = None) -> np.ndarray:
    """``a + b`` elementwise for two float arrays of one shape and dtype (no broadcasting).

    ``out`` may be ``a`` or ``b`` (in place). Each element is one addition: the same bits
    for any thread count.
    """
    a = _float_array(a, "add", "a")
    b = _float_array(b, "add", "b")
    if out is None:
        out = np.empty(a.shape, a.dtype)
    _k.add(a, b, out)
    return out


def _dim(dim, ndim: int, fn: str) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{fn}: dim must be an int, got {dim!r}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{fn}: dim {dim} is out of range for arrays of rank {ndim}")
    return int(dim) % ndim


def cat(arrays, dim: int = 0, *, out: np.ndarray | None = None) -> np.ndarray:
    """Concatenate float arrays along ``dim`` (as ``torch.cat``); every other dimension
    must agree. One C++ pass of block copies into ``out`` (allocated when None)."""
    if isinstance(arrays, np.ndarray) or not isinstance(arrays, (list, tuple)):
        raise TypeError(f"cat: arrays must be a list or tuple of arrays, got "
                        f"{type(arrays).__name__}")
    if not arrays:
        raise ValueError("cat: arrays is empty; pass at least one array")
    arrays = [_float_array(a, "cat", f"arrays[{i}]") for i, a in enumerate(arrays)]
    if arrays[0].ndim == 0:
        raise ValueError("cat: arrays must have at least 1 dimension, got a 0-d array")
    d = _dim(dim, arrays[0].ndim, "cat")
    if out is None:
        shape = list(arrays[0].shape)
        shape[d] = sum(a.shape[d] if a.ndim == arrays[0].ndim else 0 for a in arrays)
        out = np.empty(shape, arrays[0].dtype)
    _k.concat(arrays, out, d)
    return out


def split(x, sizes, dim: int = 0, *, outs=None) -> list:
    """Part ``x`` along ``dim`` into consecutive pieces of ``sizes`` (which must sum to
    ``x.shape[dim]``); the adjoint of ``cat``. Returns the pieces (written into ``outs``
    when given). Unlike ``torch.split`` the pieces are contiguous copies, not views."""
    x = _float_array(x, "split", "x")
    if x.ndim == 0:
        raise ValueError("split: x must have at least 1 dimension, got a 0-d array")
    d = _dim(dim, x.ndim, "split")
    try:
        sizes = [int(s) for s in sizes]
    except TypeError:
        raise TypeError(f"split: sizes must be a sequence of ints, got {sizes!r}") from None
    if any(s < 0 for s in sizes) or sum(sizes) != x.shape[d]:
        raise ValueError(f"split: sizes {sizes} must be non-negative and sum to "
                         f"x.shape[{d}] = {x.shape[d]}")
    if outs is None:
        outs = []
        for s in sizes:
            shape = list(x.shape)
            shape[d] = s
            outs.append(np.empty(shape, x.dtype))
    _k.split(x, list(outs), d)
    return list(outs)
