"""Activation layers: ReLU, Sigmoid, Tanh, Softmax (PyTorch names).

Each caches its OUTPUT ``y`` (the backward formulas are written in terms of it)
and, in training mode, writes into buffers it owns (``Module._scratch``).
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .module import Module

__all__ = ["ReLU", "Sigmoid", "Tanh", "Softmax"]


class _Elementwise(Module):
    _code = 0  # activation code of the kernels (functional._ACT)
    _reentrant = True  # per-call state: the rebound _y and _scratch buffers

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x):
        if type(x) is not np.ndarray or x.dtype.kind != "f" or not x.flags.c_contiguous:
            x = F._float_input(x, type(self).__name__, "input")
            if x.dtype not in (np.float32, np.float64):
                raise TypeError(f"{type(self).__name__}: input must be float32 or float64, "
                                f"got {x.dtype}")
        y = self._scratch("out", x.shape, x.dtype)
        F._activation_into(self._code, x, y)
        self.__dict__["_y"] = y  # plain attribute: skip Module.__setattr__
        return y

    def backward(self, grad_out):
        y = self._y
        if y is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        if type(grad_out) is not np.ndarray or grad_out.shape != y.shape \
                or grad_out.dtype != y.dtype:
            raise ValueError(f"{type(self).__name__}: expected grad_out {y.shape} {y.dtype}, got "
                             f"{getattr(grad_out, 'shape', None)} "
                             f"{getattr(grad_out, 'dtype', type(grad_out).__name__)}")
        if not grad_out.flags.c_contiguous:
            grad_out = np.ascontiguousarray(grad_out)
        dx = self._scratch("grad_in", y.shape, y.dtype)
        F._activation_backward_into(self._code, y, grad_out, dx)
        return dx


class ReLU(_Elementwise):
    """``max(x, 0)``; backward ``grad_out * (y > 0)``."""
    _code = F._ACT["relu"]


class Sigmoid(_Elementwise):
    """``e^x / (1 + e^x)`` (stable for large |x|); backward ``grad_out * y * (1 - y)``."""
    _code = F._ACT["sigmoid"]


class Tanh(_Elementwise):
    """``tanh(x)``; backward ``grad_out * (1 - y**2)``."""
    _code = F._ACT["tanh"]


class Softmax(_Elementwise):
    """Softmax along ``dim`` (default the last). For classification prefer returning
    logits and ``CrossEntropyLoss`` (fused, more stable); this layer is for models that
    need probabilities as an output."""

    def __init__(self, dim: int = -1):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"Softmax: dim must be an int, got {dim!r}")
        self.dim = int(dim)

    def forward(self, x):
        x = F._float_input(x, "Softmax", "input")
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(f"Softmax(dim={self.dim}): invalid for an input of shape {x.shape}")
        if self.dim % x.ndim != x.ndim - 1:
            y = F.softmax(x, axis=self.dim)
        else:
            y = self._scratch("out", x.shape, x.dtype)
            F.softmax(x, out=y)
        self._y = y
        return y

    def backward(self, grad_out):
        y = self._y
        if y is None:
            raise RuntimeError("Softmax: backward called before forward")
        if not isinstance(grad_out, np.ndarray) or grad_out.shape != y.shape:
            raise ValueError(f"Softmax: expected grad_out {y.shape}, got "
                             f"{getattr(grad_out, 'shape', None)}")
        axis = self.dim % y.ndim
        if axis == y.ndim - 1:
            dx = self._scratch("grad_in", y.shape, y.dtype)
            return F.softmax_backward(y, grad_out, out=dx)
        ym = np.ascontiguousarray(np.moveaxis(y, axis, -1))
        gm = np.ascontiguousarray(np.moveaxis(grad_out, axis, -1))
        return np.ascontiguousarray(np.moveaxis(F.softmax_backward(ym, gm), -1, axis))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
