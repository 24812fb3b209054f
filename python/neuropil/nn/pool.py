"""Pooling layers (NCHW, PyTorch's names and output-size rules)."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .conv import _check_input
from .module import Module

__all__ = ["MaxPool2d", "AvgPool2d"]


class _Pool2d(Module):
    _reentrant = True  # per-call state is rebound by forward (and _scratch buffers)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = F._pair(kernel_size, name, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else F._pair(stride, name, "stride", 1)
        self.padding = F._pair(padding, name, "padding", 0)
        if 2 * self.padding[0] > self.kernel_size[0] or 2 * self.padding[1] > self.kernel_size[1]:
            raise ValueError(f"{name}: padding {self.padding} must be at most half of "
                             f"kernel_size {self.kernel_size}")
        self.ceil_mode = bool(ceil_mode)
        self._in_shape = None

    def _out_shape(self, in_shape):
        return F.pool2d_output_shape(in_shape, self.kernel_size, self.stride, self.padding,
                                     self.ceil_mode)

    def _prepare(self, x):
        x = _check_input(self, x, None)
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{self!r}: input must be float32 or float64, got {x.dtype}")
        shape = self._out_shape(x.shape)
        if (shape[2] < 1 or shape[3] < 1 or x.shape[2] + 2 * self.padding[0] < self.kernel_size[0]
                or x.shape[3] + 2 * self.padding[1] < self.kernel_size[1]):
            raise ValueError(f"{self!r}: input {x.shape} is smaller than the window")
        self._in_shape = x.shape
        self._dtype = x.dtype
        return np.ascontiguousarray(x), shape

    def _check_grad(self, grad_out):
        if self._in_shape is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        want = self._out_shape(self._in_shape)
        grad_out = np.asarray(grad_out)
        if grad_out.shape != want:
            raise ValueError(f"{self!r}: grad_out must have shape {want}, got {grad_out.shape}")
        return grad_out.astype(self._dtype, copy=False)

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        return s + (", ceil_mode=True" if self.ceil_mode else "")


class MaxPool2d(_Pool2d):
    """Max pooling over (N, C, H, W); ``stride`` defaults to ``kernel_size``.

    Output (N, C, OH, OW), OH = (H + 2·pH − kH) // sH + 1, or rounded up with
    ``ceil_mode`` (PyTorch's rule: the last window must start inside the input
    or its left padding). Ties go to the first element in row-major order; NaN
    propagates. forward caches the argmax indices (N, C, OH, OW) for backward.
    """

    def forward(self, x):
        x, shape = self._prepare(x)
        out = self._scratch("out", shape, x.dtype)
        idx = self._scratch("indices", shape, np.int64)
        F.max_pool2d(x, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode,
                     out=out, indices=idx)
        self._indices = idx
        return out

    def backward(self, grad_out):
        grad_out = self._check_grad(grad_out)
        gi = self._scratch("grad_in", self._in_shape, self._dtype)
        return F.max_pool2d_backward(grad_out, self._indices, self._in_shape, self.kernel_size,
                                     self.stride, self.padding, ceil_mode=self.ceil_mode, out=gi)


class AvgPool2d(_Pool2d):
    """Average pooling over (N, C, H, W), as PyTorch's (``ceil_mode``, ``count_include_pad``).

    The divisor is the window clipped to the padded input with
    ``count_include_pad``, else the number of real elements it holds; a
    ``ceil_mode`` window running past the padded input counts only its part
    inside it (PyTorch's divisor).
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        x, shape = self._prepare(x)
        out = self._scratch("out", shape, x.dtype)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                            self.count_include_pad, ceil_mode=self.ceil_mode, out=out)

    def backward(self, grad_out):
        grad_out = self._check_grad(grad_out)
        gi = self._scratch("grad_in", self._in_shape, self._dtype)
        return F.avg_pool2d_backward(grad_out, self._in_shape, self.kernel_size, self.stride,
                                     self.padding, self.count_include_pad,
                                     ceil_mode=self.ceil_mode, out=gi)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", count_include_pad={self.count_include_pad}"
