"""Resampling layers (PyTorch's ``nn.Upsample``, ``nn.UpsamplingNearest2d``,
``nn.UpsamplingBilinear2d``)."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .module import Module

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]


class Upsample(Module):
    """Resample (N, C, L) or (N, C, H, W) inputs to ``size`` or by ``scale_factor``.

    ``mode``: ``"nearest"`` (default), ``"linear"`` (3-D) or ``"bilinear"`` (4-D);
    ``align_corners`` (linear modes only) and ``recompute_scale_factor`` as
    ``functional.interpolate``, whose index rules are PyTorch's. Output
    (N, C, OH, OW) with OH = ``size`` or floor(H·scale_factor). No parameters; forward
    caches only the input shape (rebound per call, so the layer may be called
    several times in a forward).
    """

    _reentrant = True

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        name = type(self).__name__
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{name}: give exactly one of size and scale_factor, got "
                             f"size={size!r}, scale_factor={scale_factor!r}")
        if mode not in ("nearest", "linear", "bilinear"):
            raise ValueError(f"{name}: mode must be 'nearest', 'linear' or 'bilinear', got "
                             f"{mode!r}")
        if mode == "nearest" and align_corners is not None:
            raise ValueError(f"{name}: align_corners can only be set with the interpolating "
                             f"modes 'linear' and 'bilinear', not {mode!r}")
        self.size = tuple(size) if isinstance(size, list) else size
        if isinstance(scale_factor, (tuple, list)):
            scale_factor = tuple(float(s) for s in scale_factor)
        elif scale_factor is not None:
            scale_factor = float(scale_factor)
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor
        self._plan = None  # (key: shape and arguments, output shape, kernel arguments)
        self._in_shape = None

    def _args(self) -> dict:
        return dict(size=self.size, scale_factor=self.scale_factor, mode=self.mode,
                    align_corners=self.align_corners,
                    recompute_scale_factor=self.recompute_scale_factor)

    def forward(self, x):
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{self!r}: input must be float32 or float64, got {x.dtype}")
        if x.ndim not in (3, 4):
            raise ValueError(f"{self!r}: expected (N, C, L) or (N, C, H, W) input, got shape "
                             f"{x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{self!r}: empty batch: input shape {x.shape}")
        key = (x.shape, self.size, self.scale_factor, self.mode, self.align_corners,
               self.recompute_scale_factor)
        plan = self._plan
        if plan is None or plan[0] != key:  # validated and computed once per shape
            plan = (key,) + F._interpolate_plan(x.shape, **self._args())
            self._plan = plan
        x = np.ascontiguousarray(x)
        y = self._scratch("out", plan[1], x.dtype)
        F._interpolate_into(x, y, plan[2])
        self._in_shape, self._in_dtype, self._call_plan = x.shape, x.dtype, plan
        return y

    def backward(self, grad_out):
        """The adjoint of forward: each input element gets the weighted sum of the output
        gradients that read it."""
        if self._in_shape is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        grad_out = np.asarray(grad_out)
        _, out_shape, args = self._call_plan
        if grad_out.shape != out_shape:
            raise ValueError(f"{self!r}: grad_out must have shape {out_shape}, got "
                             f"{grad_out.shape}")
        if grad_out.dtype.kind == "f":
            grad_out = np.ascontiguousarray(grad_out, dtype=self._in_dtype)
        gi = self._scratch("grad_in", self._in_shape, self._in_dtype)
        F._interpolate_backward_into(grad_out, gi, args)
        return gi

    def extra_repr(self) -> str:
        what = (f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None
                else f"size={self.size!r}")
        s = f"{what}, mode={self.mode!r}"
        if self.align_corners is not None:
            s += f", align_corners={self.align_corners}"
        return s


class UpsamplingNearest2d(Upsample):
    """``Upsample(size, scale_factor, mode="nearest")`` (PyTorch's legacy name)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``Upsample(size, scale_factor, mode="bilinear", align_corners=True)`` (PyTorch's
    legacy name; note align_corners=True)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
