"""Convolution and pooling layers (NCHW, PyTorch's names, layouts and initialisation)."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from .module import Module, Parameter

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d"]


def _check_input(layer: Module, x, channels: int | None) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    want = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        raise ValueError(f"{layer!r}: expected input of shape {want}, got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{layer!r}: empty batch: input shape {x.shape}")
    return x


class Conv2d(Module):
    """2-D convolution (cross-correlation) over (N, C, H, W) inputs.

    ``weight`` (out_channels, in_channels, kH, kW) and ``bias`` (out_channels,)
    are initialised as PyTorch does: U(−1/√fan_in, 1/√fan_in) with
    fan_in = in_channels·kH·kW. Output (N, out_channels, OH, OW) with
    OH = (H + 2·pH − dH·(kH − 1) − 1) // sH + 1. ``padding="same"`` (odd
    kernels, stride 1) keeps H and W; ``"valid"`` means 0.

    forward caches the input ``x`` (a reference) for backward. Set
    ``layer.input_grad = False`` on a first layer to skip computing the
    gradient of the input (``backward`` then returns None).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, rng=None, dtype=np.float32):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Conv2d: {name} must be a positive int, got {v!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = F._pair(kernel_size, "Conv2d", "kernel_size", 1)
        self.stride = F._pair(stride, "Conv2d", "stride", 1)
        self.dilation = F._pair(dilation, "Conv2d", "dilation", 1)
        if isinstance(padding, str):
            if padding == "valid":
                padding = (0, 0)
            elif padding == "same":
                if any(k % 2 == 0 for k in self.kernel_size):
                    raise ValueError(f"Conv2d: padding='same' needs odd kernel sizes, got "
                                     f"kernel_size={self.kernel_size}")
                if self.stride != (1, 1):
                    raise ValueError(f"Conv2d: padding='same' needs stride 1, got {self.stride}")
                padding = tuple(d * (k - 1) // 2 for k, d in zip(self.kernel_size, self.dilation))
            else:
                raise ValueError(f"Conv2d: padding must be an int, a pair, 'same' or 'valid', "
                                 f"got {padding!r}")
        self.padding = F._pair(padding, "Conv2d", "padding", 0)
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"Conv2d: dtype must be float32 or float64, got {dtype}")
        gen = get_rng(rng)
        kh, kw = self.kernel_size
        bound = 1.0 / math.sqrt(self.in_channels * kh * kw)
        self.weight = Parameter(gen.uniform(-bound, bound, (self.out_channels, self.in_channels,
                                                           kh, kw)).astype(dtype))
        self.bias = (Parameter(gen.uniform(-bound, bound, self.out_channels).astype(dtype))
                     if bias else None)
        self.input_grad = True
        self._x = None

    def forward(self, x):
        x = _check_input(self, x, self.in_channels)
        if x.dtype != self.weight.dtype:
            raise TypeError(f"{self!r}: input is {x.dtype} but the layer is "
                            f"{self.weight.dtype}; use .to(dtype) or cast the input")
        x = np.ascontiguousarray(x)
        shape = F.conv2d_output_shape(x.shape, self.weight.shape, self.stride, self.padding,
                                      self.dilation)
        if shape[2] < 1 or shape[3] < 1:
            raise ValueError(f"{self!r}: input {x.shape} is too small for the kernel "
                             f"(output would be {shape})")
        out = self._scratch("out", shape, x.dtype)
        F.conv2d(x, self.weight.data, None if self.bias is None else self.bias.data,
                 self.stride, self.padding, self.dilation, out=out)
        self._x = x
        return out

    def backward(self, grad_out):
        if self._x is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        x = self._x
        grad_out = np.asarray(grad_out)
        want = F.conv2d_output_shape(x.shape, self.weight.shape, self.stride, self.padding,
                                     self.dilation)
        if grad_out.shape != want:
            raise ValueError(f"{self!r}: grad_out must have shape {want}, got {grad_out.shape}")
        gi = self._scratch("grad_in", x.shape, x.dtype) if self.input_grad else None
        has_b = self.bias is not None
        F.conv2d_backward(x, self.weight.data, grad_out.astype(x.dtype, copy=False),
                          self.stride, self.padding, self.dilation,
                          need_input=self.input_grad, need_bias=has_b, grad_input=gi,
                          grad_weight=self.weight.grad,
                          grad_bias=self.bias.grad if has_b else None, accumulate=True)
        return gi

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.bias is None:
            s += ", bias=False"
        return s


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = F._pair(kernel_size, name, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else F._pair(stride, name, "stride", 1)
        self.padding = F._pair(padding, name, "padding", 0)
        if 2 * self.padding[0] > self.kernel_size[0] or 2 * self.padding[1] > self.kernel_size[1]:
            raise ValueError(f"{name}: padding {self.padding} must be at most half of "
                             f"kernel_size {self.kernel_size}")
        self._in_shape = None

    def _prepare(self, x):
        x = _check_input(self, x, None)
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{self!r}: input must be float32 or float64, got {x.dtype}")
        shape = F.pool2d_output_shape(x.shape, self.kernel_size, self.stride, self.padding)
        if shape[2] < 1 or shape[3] < 1:
            raise ValueError(f"{self!r}: input {x.shape} is smaller than the window")
        self._in_shape = x.shape
        return np.ascontiguousarray(x), shape

    def _check_grad(self, grad_out, x_dtype=None):
        if self._in_shape is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        want = F.pool2d_output_shape(self._in_shape, self.kernel_size, self.stride, self.padding)
        grad_out = np.asarray(grad_out)
        if grad_out.shape != want:
            raise ValueError(f"{self!r}: grad_out must have shape {want}, got {grad_out.shape}")
        return grad_out

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max pooling over (N, C, H, W); ``stride`` defaults to ``kernel_size``.

    Output (N, C, OH, OW), OH = (H + 2·pH − kH) // sH + 1. Ties go to the first
    element in row-major order; NaN propagates. forward caches the argmax
    indices (N, C, OH, OW) for backward.
    """

    def forward(self, x):
        x, shape = self._prepare(x)
        out = self._scratch("out", shape, x.dtype)
        idx = self._scratch("indices", shape, np.int64)
        F.max_pool2d(x, self.kernel_size, self.stride, self.padding, out=out, indices=idx)
        self._indices = idx
        self._dtype = x.dtype
        return out

    def backward(self, grad_out):
        grad_out = self._check_grad(grad_out)
        gi = self._scratch("grad_in", self._in_shape, self._dtype)
        return F.max_pool2d_backward(grad_out.astype(self._dtype, copy=False), self._indices,
                                     self._in_shape, self.kernel_size, self.stride,
                                     self.padding, out=gi)


class AvgPool2d(_Pool2d):
    """Average pooling over (N, C, H, W), as PyTorch's (``count_include_pad``)."""

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        x, shape = self._prepare(x)
        out = self._scratch("out", shape, x.dtype)
        self._dtype = x.dtype
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                            self.count_include_pad, out=out)

    def backward(self, grad_out):
        grad_out = self._check_grad(grad_out)
        gi = self._scratch("grad_in", self._in_shape, self._dtype)
        return F.avg_pool2d_backward(grad_out.astype(self._dtype, copy=False), self._in_shape,
                                     self.kernel_size, self.stride, self.padding,
                                     self.count_include_pad, out=gi)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", count_include_pad={self.count_include_pad}"
