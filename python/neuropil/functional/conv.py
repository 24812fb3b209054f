"""Convolution (NCHW) and im2col/col2im. Kernels: cpp/include/neuropil/conv.h."""
from __future__ import annotations

import numpy as np

from ._common import _float_tensor, _k, _out_array, _pair

__all__ = ["conv2d", "conv2d_backward", "conv2d_output_shape", "im2col", "col2im"]


def conv2d_output_shape(input_shape, weight_shape, stride=1, padding=0, dilation=1) -> tuple:
    """``(N, OC, OH, OW)`` of ``conv2d``: OH = (H + 2·pH − dH·(kH − 1) − 1) // sH + 1."""
    n, _, h, w = input_shape
    oc, _, kh, kw = weight_shape
    sh, sw = _pair(stride, "conv2d", "stride", 1)
    ph, pw = _pair(padding, "conv2d", "padding", 0)
    dh, dw = _pair(dilation, "conv2d", "dilation", 1)
    return (n, oc, (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
            (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, *, out=None) -> np.ndarray:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d`` (NCHW).

    ``x`` (N, C, H, W), ``weight`` (OC, C, kH, kW), ``bias`` (OC,) or None ->
    (N, OC, OH, OW) with OH = (H + 2·pH − dH·(kH − 1) − 1) // sH + 1 (OW alike):
    ``y[n,o,i,j] = b[o] + Σ_{c,p,q} w[o,c,p,q] · x[n, c, i·sH − pH + p·dH, j·sW − pW + q·dW]``
    with zero padding. ``stride``, ``padding``, ``dilation``: int or (h, w) pair.
    Runs as im2col + GEMM in C++ (1×1 stride-1 unpadded kernels skip im2col).
    """
    fn = "conv2d"
    x = _float_tensor(x, fn, "x", 4, "(N, C, H, W)")
    weight = _float_tensor(weight, fn, "weight", 4, "(out_channels, in_channels, kH, kW)")
    if bias is not None:
        bias = _float_tensor(bias, fn, "bias", 1, "(out_channels,)")
    s = _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    d = _pair(dilation, fn, "dilation", 1)
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"{fn}: weight {weight.shape} expects {weight.shape[1]} input channels "
                         f"but x {x.shape} has {x.shape[1]} (x is (N, C, H, W))")
    shape = conv2d_output_shape(x.shape, weight.shape, s, p, d)
    if shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"{fn}: kernel {weight.shape[2:]} (dilation {d}) does not fit the "
                         f"input {x.shape[2:]} padded by {p}; the output would be empty")
    out = _out_array(out, shape, x.dtype, fn)
    _k.conv2d_forward(x, weight, bias, out, s, p, d)
    return out


def conv2d_backward(x, weight, grad_out, stride=1, padding=0, dilation=1, *, need_input=True,
                    need_weight=True, need_bias=True, grad_input=None, grad_weight=None,
                    grad_bias=None, accumulate=False):
    """Gradients of ``conv2d``: returns ``(grad_input, grad_weight, grad_bias)``.

    ``grad_out`` is (N, OC, OH, OW). Each gradient is None when not needed.
    With ``accumulate=True`` the given ``grad_weight``/``grad_bias`` arrays are
    added to (``+=``, as layers do); otherwise they are overwritten.
    ``grad_input`` (N, C, H, W) is always overwritten. One fused C++ pass per
    image: im2col, dW += dY·colsᵀ, db += Σ dY, dX = col2im(Wᵀ·dY).
    """
    fn = "conv2d_backward"
    x = _float_tensor(x, fn, "x", 4, "(N, C, H, W)")
    weight = _float_tensor(weight, fn, "weight", 4, "(out_channels, in_channels, kH, kW)")
    grad_out = _float_tensor(grad_out, fn, "grad_out", 4, "(N, out_channels, OH, OW)")
    s = _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    d = _pair(dilation, fn, "dilation", 1)
    if accumulate and ((need_weight and grad_weight is None) or (need_bias and grad_bias is None)):
        raise ValueError(f"{fn}: accumulate=True needs grad_weight= and grad_bias= arrays")
    gi = _out_array(grad_input, x.shape, x.dtype, fn, "grad_input") if need_input else None
    gw = _out_array(grad_weight, weight.shape, x.dtype, fn, "grad_weight") if need_weight else None
    gb = _out_array(grad_bias, (weight.shape[0],), x.dtype, fn, "grad_bias") if need_bias else None
    _k.conv2d_backward(x, weight, grad_out, gi, gw, gb, s, p, d, 1.0 if accumulate else 0.0)
    return gi, gw, gb


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, *, out=None) -> np.ndarray:
    """Columns of ``x`` (N, C, H, W) -> (N, C·kH·kW, OH·OW).

    ``cols[n, (c·kH + p)·kW + q, i·OW + j] = x[n, c, i·sH − pH + p·dH, j·sW − pW + q·dW]``
    (0 outside the image), so that ``conv2d(x, w) = w.reshape(OC, -1) @ cols``.
    """
    fn = "im2col"
    x = _float_tensor(x, fn, "x", 4, "(N, C, H, W)")
    k = _pair(kernel_size, fn, "kernel_size", 1)
    s, p, d = _pair(stride, fn, "stride", 1), _pair(padding, fn, "padding", 0), _pair(dilation, fn, "dilation", 1)
    n, c, oh, ow = conv2d_output_shape(x.shape, (1, x.shape[1]) + k, s, p, d)
    if oh < 1 or ow < 1:
        raise ValueError(f"{fn}: kernel {k} (dilation {d}) does not fit the input "
                         f"{x.shape[2:]} padded by {p}")
    out = _out_array(out, (n, x.shape[1] * k[0] * k[1], oh * ow), x.dtype, fn)
    _k.im2col(x, out, k, s, p, d)
    return out


def col2im(cols, input_shape, kernel_size, stride=1, padding=0, dilation=1, *, out=None) -> np.ndarray:
    """Adjoint of ``im2col``: (N, C·kH·kW, OH·OW) -> ``input_shape`` (N, C, H, W).

    Each image element receives the sum of every column entry that read it.
    """
    fn = "col2im"
    cols = _float_tensor(cols, fn, "cols", 3, "(N, C*kH*kW, OH*OW)")
    k = _pair(kernel_size, fn, "kernel_size", 1)
    s, p, d = _pair(stride, fn, "stride", 1), _pair(padding, fn, "padding", 0), _pair(dilation, fn, "dilation", 1)
    try:
        input_shape = tuple(int(v) for v in input_shape)
    except TypeError:
        raise TypeError(f"{fn}: input_shape must be a tuple (N, C, H, W), got {input_shape!r}") from None
    if len(input_shape) != 4 or min(input_shape) < 0:
        raise ValueError(f"{fn}: input_shape must be (N, C, H, W), got {input_shape!r}")
    out = _out_array(out, input_shape, cols.dtype, fn)
    _k.col2im(cols, out, k, s, p, d)
    return out

