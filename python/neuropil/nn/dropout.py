"""Inverted dropout (PyTorch's ``nn.Dropout``)."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._random import get_rng
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``,
    in training mode only (eval mode returns the input unchanged).

    Each forward draws a 63-bit seed from ``neuropil._random.get_rng(rng)``; the mask
    is a counter-based hash of (seed, element index), the same for any thread count,
    and backward regenerates it from the seed instead of storing it.
    """

    _reentrant = True  # per-call state: rebound attributes and _scratch buffers

    def __init__(self, p: float = 0.5, rng=None):
        super().__init__()
        self.p = F._check_p(p, "Dropout")
        self._rng = rng
        self._seed = None  # None: the last forward was the identity
        self._shape = None

    def _draw_seed(self) -> int:
        return int(get_rng(self._rng).integers(0, 2**63))

    def forward(self, x):
        x = F._float_input(x, "Dropout", "input")
        self._shape = x.shape
        if not self.training or self.p == 0.0:
            self._seed = None
            return x
        self._seed = self._draw_seed()
        y = self._scratch("out", x.shape, x.dtype)
        return F.dropout(x, self.p, seed=self._seed, out=y)

    def backward(self, grad_out):
        if self._shape is None:
            raise RuntimeError("Dropout: backward called before forward")
        if not isinstance(grad_out, np.ndarray) or grad_out.shape != self._shape:
            raise ValueError(f"Dropout(p={self.p}): expected grad_out {self._shape}, got "
                             f"{getattr(grad_out, 'shape', None)}")
        if self._seed is None:
            return grad_out
        dx = self._scratch("grad_in", grad_out.shape, grad_out.dtype)
        return F.dropout_backward(grad_out, self.p, self._seed, out=dx)

    def extra_repr(self) -> str:
        return f"p={self.p}"
