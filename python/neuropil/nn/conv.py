"""Convolution layers (NCHW, PyTorch's names, layouts and initialisation)."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from .module import Module, Parameter

__all__ = ["Conv2d", "ConvTranspose2d"]


def _check_input(layer: Module, x, channels: int | None) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    want = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        got = (f"{x.shape} ({x.shape[1]} channels, expected {channels})"
               if x.ndim == 4 and channels is not None else f"{x.shape}")
        raise ValueError(f"{layer!r}: expected input of shape {want}, got {got}")
    if x.shape[0] == 0:
        raise ValueError(f"{layer!r}: empty batch: input shape {x.shape}")
    return x


def _channels(name: str, in_channels, out_channels, groups):
    for arg, v in (("in_channels", in_channels), ("out_channels", out_channels),
                   ("groups", groups)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: {arg} must be a positive int, got {v!r}")
    if in_channels % groups:
        raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by groups "
                         f"({groups})")
    if out_channels % groups:
        raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by groups "
                         f"({groups})")
    return int(in_channels), int(out_channels), int(groups)


def _dtype(name: str, dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: dtype must be float32 or float64, got {dtype}")
    return dtype


class _ConvBase(Module):
    """Shared parameter handling of Conv2d and ConvTranspose2d."""

    _reentrant = True  # per-call state: self._x (rebound by forward) and _scratch buffers

    def _init_parameters(self, shape, fan_in: int, bias: bool, rng, dtype) -> None:
        # PyTorch: kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in));
        # the bias uses the same bound.
        gen = get_rng(rng)
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = Parameter(gen.uniform(-bound, bound, shape).astype(dtype))
        self.bias = (Parameter(gen.uniform(-bound, bound, self.out_channels).astype(dtype))
                     if bias else None)

    def _prepared(self, x) -> np.ndarray:
        x = _check_input(self, x, self.in_channels)
        if x.dtype != self.weight.dtype:
            raise TypeError(f"{self!r}: input is {x.dtype} but the layer is "
                            f"{self.weight.dtype}; use .to(dtype) or cast the input")
        return np.ascontiguousarray(x)

    def _grad_targets(self):
        """(grad_weight, grad_bias, beta) for one kernel call; None for frozen parameters.
        A gradient just zeroed by zero_grad() is overwritten (beta 0) rather than added to."""
        w, b = self.weight, self.bias
        gw, w_zeroed = w._grad_for_write() if w.requires_grad else (None, None)
        gb, b_zeroed = (b._grad_for_write() if b is not None and b.requires_grad
                        else (None, None))
        flags = {z for z in (w_zeroed, b_zeroed) if z is not None}
        if len(flags) == 2:  # one zeroed, the other not: one beta for both
            (gw if w_zeroed else gb).fill(0)
            return gw, gb, 1.0
        return gw, gb, 0.0 if flags == {True} else 1.0

    def _grad_out(self, grad_out, want) -> np.ndarray:
        if self._x is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        grad_out = np.asarray(grad_out)
        if grad_out.shape != want:
            raise ValueError(f"{self!r}: grad_out must have shape {want}, got {grad_out.shape}")
        return grad_out.astype(self._x.dtype, copy=False)  # never modified


class Conv2d(_ConvBase):
    """2-D convolution (cross-correlation) over (N, C, H, W) inputs, as PyTorch's.

    ``weight`` (out_channels, in_channels/groups, kH, kW) and ``bias``
    (out_channels,) are initialised as PyTorch does: U(−1/√fan_in, 1/√fan_in)
    with fan_in = in_channels/groups·kH·kW. Output (N, out_channels, OH, OW) with
    OH = (H + 2·pH − dH·(kH − 1) − 1) // sH + 1. ``padding="same"`` (odd
    kernels, stride 1) keeps H and W; ``"valid"`` means 0. ``groups`` splits the
    channels into independent convolutions (``groups == in_channels``:
    depthwise); both channel counts must divide by it.

    forward caches the input ``x`` (a reference) for backward. Gradients of
    parameters with ``requires_grad`` False are not computed; ``backward_params``
    skips the input gradient (as does ``layer.input_grad = False``, after which
    ``backward`` returns None).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, rng=None, dtype=np.float32):
        super().__init__()
        self.in_channels, self.out_channels, self.groups = _channels(
            "Conv2d", in_channels, out_channels, groups)
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
        dtype = _dtype("Conv2d", dtype)
        kh, kw = self.kernel_size
        cg = self.in_channels // self.groups
        self._init_parameters((self.out_channels, cg, kh, kw), cg * kh * kw, bias, rng, dtype)
        self.input_grad = True
        self._x = None

    def _out_shape(self, in_shape):
        return F.conv2d_output_shape(in_shape, self.weight.shape, self.stride, self.padding,
                                     self.dilation)

    def forward(self, x):
        x = self._prepared(x)
        shape = self._out_shape(x.shape)
        if shape[2] < 1 or shape[3] < 1:
            raise ValueError(f"{self!r}: input {x.shape} is too small for the kernel "
                             f"(output would be {shape})")
        out = self._scratch("out", shape, x.dtype)
        F.conv2d(x, self.weight.data, None if self.bias is None else self.bias.data,
                 self.stride, self.padding, self.dilation, self.groups, out=out)
        self._x = x
        return out

    def _backward(self, grad_out, need_input: bool):
        x = self._x
        grad_out = self._grad_out(grad_out, self._out_shape(x.shape) if x is not None else None)
        gi = self._scratch("grad_in", x.shape, x.dtype) if need_input else None
        gw, gb, beta = self._grad_targets()
        if gi is None and gw is None and gb is None:
            return None
        F.conv2d_backward(x, self.weight.data, grad_out, self.stride, self.padding,
                          self.dilation, self.groups, need_input=need_input,
                          need_weight=gw is not None, need_bias=gb is not None, grad_input=gi,
                          grad_weight=gw, grad_bias=gb, beta=beta)
        return gi

    def backward(self, grad_out):
        return self._backward(grad_out, self.input_grad)

    def backward_params(self, grad_out) -> None:
        self._backward(grad_out, False)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class ConvTranspose2d(_ConvBase):
    """2-D transposed convolution over (N, C, H, W) inputs, as PyTorch's.

    ``weight`` (in_channels, out_channels/groups, kH, kW), ``bias``
    (out_channels,), both U(−1/√fan_in, 1/√fan_in) with fan_in =
    out_channels/groups·kH·kW (PyTorch's rule for this layer). Output
    (N, out_channels, Ho, Wo), Ho = (H − 1)·sH − 2·pH + dH·(kH − 1) + opH + 1;
    ``output_padding`` must be smaller than stride or dilation. ``forward(x,
    output_size=(Ho, Wo))`` picks the output padding that gives that size
    (between the smallest size and it plus stride − 1).

    It is the input gradient of a Conv2d with the same arguments: forward runs
    that convolution's data gradient, backward its forward (input gradient) and
    its weight gradient with the roles of input and output swapped.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, rng=None, dtype=np.float32):
        super().__init__()
        name = "ConvTranspose2d"
        self.in_channels, self.out_channels, self.groups = _channels(
            name, in_channels, out_channels, groups)
        self.kernel_size = F._pair(kernel_size, name, "kernel_size", 1)
        self.stride = F._pair(stride, name, "stride", 1)
        self.padding = F._pair(padding, name, "padding", 0)
        self.output_padding = F._pair(output_padding, name, "output_padding", 0)
        self.dilation = F._pair(dilation, name, "dilation", 1)
        for i in range(2):
            if self.output_padding[i] >= max(self.stride[i], self.dilation[i]):
                raise ValueError(f"{name}: output_padding {self.output_padding} must be smaller "
                                 f"than either stride {self.stride} or dilation {self.dilation}")
        dtype = _dtype(name, dtype)
        kh, kw = self.kernel_size
        og = self.out_channels // self.groups
        self._init_parameters((self.in_channels, og, kh, kw), og * kh * kw, bias, rng, dtype)
        self._x = None
        self._op = self.output_padding

    def _output_padding(self, x_shape, output_size):
        if output_size is None:
            return self.output_padding
        size = tuple(int(v) for v in output_size)
        if len(size) == 4:
            size = size[2:]
        if len(size) != 2:
            raise ValueError(f"{self!r}: output_size must be (H, W) or (N, C, H, W), got "
                             f"{output_size!r}")
        op = []
        for i in range(2):
            lo = ((x_shape[2 + i] - 1) * self.stride[i] - 2 * self.padding[i]
                  + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            hi = lo + self.stride[i] - 1
            if not lo <= size[i] <= hi:
                raise ValueError(f"{self!r}: requested an output size of {size}, but valid sizes "
                                 f"for an input of {tuple(x_shape)} range from "
                                 f"{lo} to {hi} in dimension {i}")
            op.append(size[i] - lo)
        return tuple(op)

    def forward(self, x, output_size=None):
        x = self._prepared(x)
        op = self._output_padding(x.shape, output_size)
        shape = F.conv_transpose2d_output_shape(x.shape, self.weight.shape, self.stride,
                                                self.padding, op, self.groups, self.dilation)
        if shape[2] < 1 or shape[3] < 1:
            raise ValueError(f"{self!r}: the output for input {x.shape} would be empty {shape}")
        out = self._scratch("out", shape, x.dtype)
        F.conv_transpose2d(x, self.weight.data, None if self.bias is None else self.bias.data,
                           self.stride, self.padding, op, self.groups, self.dilation, out=out)
        self._x = x
        self._op = op
        return out

    def _backward(self, grad_out, need_input: bool):
        x = self._x
        want = None if x is None else F.conv_transpose2d_output_shape(
            x.shape, self.weight.shape, self.stride, self.padding, self._op, self.groups,
            self.dilation)
        grad_out = self._grad_out(grad_out, want)
        gi = self._scratch("grad_in", x.shape, x.dtype) if need_input else None
        gw, gb, beta = self._grad_targets()
        if gi is None and gw is None and gb is None:
            return None
        F.conv_transpose2d_backward(x, self.weight.data, grad_out, self.stride, self.padding,
                                    self._op, self.groups, self.dilation, need_input=need_input,
                                    need_weight=gw is not None, need_bias=gb is not None,
                                    grad_input=gi, grad_weight=gw, grad_bias=gb, beta=beta)
        return gi

    def backward(self, grad_out):
        return self._backward(grad_out, True)

    def backward_params(self, grad_out) -> None:
        self._backward(grad_out, False)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
