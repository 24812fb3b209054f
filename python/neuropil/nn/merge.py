"""Merge layers: ``Concat`` (join along a dimension) and ``Add`` (elementwise sum).

They take several inputs, ``forward(a, b, ...)``, and their ``backward(grad_out)`` returns
one gradient per input, which is how a graph model routes gradients back into each branch
(a U-Net's skip connections, a residual block's shortcut). Both are reentrant: one
instance may serve every merge of a model. The arithmetic is C++ (``functional.cat``,
``functional.split``, ``functional.add``).
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .module import Module

__all__ = ["Concat", "Add"]


def _inputs(layer: str, xs) -> list:
    if not xs:
        raise ValueError(f"{layer}: needs at least one input array")
    out = []
    for i, x in enumerate(xs):
        if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{layer}: input {i} must be a float32 or float64 array, got "
                            f"{getattr(x, 'dtype', type(x).__name__)}")
        if x.dtype != xs[0].dtype:
            raise TypeError(f"{layer}: input {i} is {x.dtype} but input 0 is {xs[0].dtype}")
        out.append(x if x.flags.c_contiguous else np.ascontiguousarray(x))
    return out


class Concat(Module):
    """Concatenate the inputs along ``dim`` (default 1, the channels of NCHW):
    ``(N, C1, H, W), (N, C2, H, W) -> (N, C1 + C2, H, W)``. Every other dimension must
    agree; the error names the inputs' shapes. backward splits the gradient back."""

    _reentrant = True

    def __init__(self, dim: int = 1):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"Concat: dim must be an int, got {dim!r}")
        self.dim = int(dim)
        self._sizes = None

    def forward(self, *xs):
        xs = _inputs(repr(self), xs)
        nd = xs[0].ndim
        if not -nd <= self.dim < nd:
            raise ValueError(f"{self!r}: dim {self.dim} is out of range for inputs of rank {nd}")
        d = self.dim % nd
        for i, x in enumerate(xs[1:], 1):
            if x.ndim != nd or x.shape[:d] != xs[0].shape[:d] or x.shape[d + 1:] != xs[0].shape[d + 1:]:
                raise ValueError(
                    f"{self!r}: input {i} has shape {x.shape} but input 0 has {xs[0].shape}; "
                    f"they must agree in every dimension except {d}")
        shape = list(xs[0].shape)
        shape[d] = sum(x.shape[d] for x in xs)
        out = self._scratch("out", tuple(shape), xs[0].dtype)
        F.cat(xs, d, out=out)
        self.__dict__["_sizes"] = ([x.shape for x in xs], d)
        return out

    def backward(self, grad_out):
        if self._sizes is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        shapes, d = self._sizes
        g = np.asarray(grad_out)
        want = list(shapes[0])
        want[d] = sum(s[d] for s in shapes)
        if g.shape != tuple(want):
            raise ValueError(f"{self!r}: expected grad_out of shape {tuple(want)}, got {g.shape}")
        outs = [self._scratch(f"grad_in{i}", s, g.dtype) for i, s in enumerate(shapes)]
        F.split(g, [s[d] for s in shapes], d, outs=outs)
        return tuple(outs)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Add(Module):
    """Elementwise sum of inputs of one shape (no broadcasting): a residual connection's
    merge. backward hands the same gradient to every input."""

    _reentrant = True

    def __init__(self):
        super().__init__()
        self._shape = None

    def forward(self, *xs):
        xs = _inputs("Add", xs)
        for i, x in enumerate(xs[1:], 1):
            if x.shape != xs[0].shape:
                raise ValueError(f"Add: input {i} has shape {x.shape} but input 0 has "
                                 f"{xs[0].shape}; they must be equal (no broadcasting)")
        out = self._scratch("out", xs[0].shape, xs[0].dtype)
        if len(xs) == 1:
            np.copyto(out, xs[0])
        else:
            F.add(xs[0], xs[1], out=out)
            for x in xs[2:]:
                F.add(out, x, out=out)
        self.__dict__["_shape"] = (xs[0].shape, len(xs))
        return out

    def backward(self, grad_out):
        if self._shape is None:
            raise RuntimeError("Add: backward called before forward")
        shape, n = self._shape
        if not isinstance(grad_out, np.ndarray) or grad_out.shape != shape:
            raise ValueError(f"Add: expected grad_out of shape {shape}, got "
                             f"{getattr(grad_out, 'shape', type(grad_out).__name__)}")
        return (grad_out,) * n
