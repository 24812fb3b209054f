"""Convolution (NCHW) and im2col/col2im. Kernels: cpp/include/neuropil/conv.h."""
from __future__ import annotations

import numpy as np

from ._common import _float_tensor, _k, _out_array, _pair

__all__ = ["conv2d", "conv2d_backward", "conv2d_output_shape", "conv_transpose2d",
           "conv_transpose2d_backward", "conv_transpose2d_output_shape", "im2col", "col2im"]


def _groups(groups, fn: str) -> int:
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r}")
    return int(groups)


def conv2d_output_shape(input_shape, weight_shape, stride=1, padding=0, dilation=1) -> tuple:
    """``(N, OC, OH, OW)`` of ``conv2d``: OH = (H + 2·pH − dH·(kH − 1) − 1) // sH + 1."""
    n, _, h, w = input_shape
    oc, _, kh, kw = weight_shape
    sh, sw = _pair(stride, "conv2d", "stride", 1)
    ph, pw = _pair(padding, "conv2d", "padding", 0)
    dh, dw = _pair(dilation, "conv2d", "dilation", 1)
    return (n, oc, (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
            (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           out=None) -> np.ndarray:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d`` (NCHW).

    ``x`` (N, C, H, W), ``weight`` (OC, C/groups, kH, kW), ``bias`` (OC,) or None ->
    (N, OC, OH, OW) with OH = (H + 2·pH − dH·(kH − 1) − 1) // sH + 1 (OW alike):
    ``y[n,o,i,j] = b[o] + Σ_{c,p,q} w[o,c,p,q] · x[n, g·C/G + c, i·sH − pH + p·dH, j·sW − pW + q·dW]``
    with zero padding, g = o // (OC/G) the output channel's group. ``stride``,
    ``padding``, ``dilation``: int or (h, w) pair; ``groups`` divides C and OC.
    float32 under AVX2/AVX-512 runs a direct convolution (no column buffer);
    otherwise im2col + GEMM per image and group, in C++.
    """
    fn = "conv2d"
    x = _float_tensor(x, fn, "x", 4, "(N, C, H, W)")
    weight = _float_tensor(weight, fn, "weight", 4, "(out_channels, in_channels/groups, kH, kW)")
    groups = _groups(groups, fn)
    if bias is not None:
        bias = _float_tensor(bias, fn, "bias", 1, "(out_channels,)")
    s = _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    d = _pair(dilation, fn, "dilation", 1)
    _check_channels(fn, x, weight, groups)
    shape = conv2d_output_shape(x.shape, weight.shape, s, p, d)
    if shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"{fn}: kernel {weight.shape[2:]} (dilation {d}) does not fit the "
                         f"input {x.shape[2:]} padded by {p}; the output would be empty")
    out = _out_array(out, shape, x.dtype, fn)
    _k.conv2d_forward(x, weight, bias, out, s, p, d, groups)
    return out


def _check_channels(fn, x, weight, groups):
    if weight.shape[1] * groups != x.shape[1]:
        raise ValueError(f"{fn}: weight {weight.shape} expects {weight.shape[1] * groups} input "
                         f"channels ({weight.shape[1]} per group x groups={groups}) but x "
                         f"{x.shape} has {x.shape[1]} (x is (N, C, H, W))")
    if weight.shape[0] % groups:
        raise ValueError(f"{fn}: groups={groups} must divide out_channels, got "
                         f"{weight.shape[0]} (weight {weight.shape})")


def conv2d_backward(x, weight, grad_out, stride=1, padding=0, dilation=1, groups=1, *,
                    need_input=True, need_weight=True, need_bias=True, grad_input=None,
                    grad_weight=None, grad_bias=None, accumulate=False, beta=None):
    """Gradients of ``conv2d``: returns ``(grad_input, grad_weight, grad_bias)``.

    ``grad_out`` is (N, OC, OH, OW). Each gradient is None when not needed.
    With ``accumulate=True`` the given ``grad_weight``/``grad_bias`` arrays are
    added to (``+=``, as layers do); otherwise they are overwritten (``beta``,
    when given, scales the old contents instead: 0 overwrites, 1 accumulates).
    ``grad_input`` (N, C, H, W) is always overwritten. One fused C++ pass per
    chunk of images: dW and db, and dX (without a column buffer on the direct
    path; im2col/col2im + GEMM on the reference path).
    """
    fn = "conv2d_backward"
    x = _float_tensor(x, fn, "x", 4, "(N, C, H, W)")
    weight = _float_tensor(weight, fn, "weight", 4, "(out_channels, in_channels/groups, kH, kW)")
    groups = _groups(groups, fn)
    grad_out = _float_tensor(grad_out, fn, "grad_out", 4, "(N, out_channels, OH, OW)")
    s = _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    d = _pair(dilation, fn, "dilation", 1)
    if accumulate and ((need_weight and grad_weight is None) or (need_bias and grad_bias is None)):
        raise ValueError(f"{fn}: accumulate=True needs grad_weight= and grad_bias= arrays")
    gi = _out_array(grad_input, x.shape, x.dtype, fn, "grad_input") if need_input else None
    gw = _out_array(grad_weight, weight.shape, x.dtype, fn, "grad_weight") if need_weight else None
    gb = _out_array(grad_bias, (weight.shape[0],), x.dtype, fn, "grad_bias") if need_bias else None
    if beta is None:
        beta = 1.0 if accumulate else 0.0
    _k.conv2d_backward(x, weight, grad_out, gi, gw, gb, s, p, d, groups, float(beta))
    return gi, gw, gb


def conv_transpose2d_output_shape(input_shape, weight_shape, stride=1, padding=0,
                                  output_padding=0, groups=1, dilation=1) -> tuple:
    """``(N, Cout, Ho, Wo)`` of ``conv_transpose2d`` (PyTorch's rule):
    Ho = (H − 1)·sH − 2·pH + dH·(kH − 1) + opH + 1, Cout = weight.shape[1]·groups."""
    n, _, h, w = input_shape
    _, cg, kh, kw = weight_shape
    sh, sw = _pair(stride, "conv_transpose2d", "stride", 1)
    ph, pw = _pair(padding, "conv_transpose2d", "padding", 0)
    oph, opw = _pair(output_padding, "conv_transpose2d", "output_padding", 0)
    dh, dw = _pair(dilation, "conv_transpose2d", "dilation", 1)
    return (n, cg * groups, (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1,
            (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1)


def _transpose_args(fn, x, weight, stride, padding, output_padding, groups, dilation):
    x = _float_tensor(x, fn, "x", 4, "(N, C, H, W)")
    weight = _float_tensor(weight, fn, "weight", 4, "(in_channels, out_channels/groups, kH, kW)")
    groups = _groups(groups, fn)
    s = _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    op = _pair(output_padding, fn, "output_padding", 0)
    d = _pair(dilation, fn, "dilation", 1)
    for i in range(2):
        if op[i] >= max(s[i], d[i]):
            raise ValueError(f"{fn}: output_padding {op} must be smaller than either stride {s} "
                             f"or dilation {d} (in each dimension)")
    if weight.shape[0] != x.shape[1]:
        raise ValueError(f"{fn}: weight {weight.shape} expects {weight.shape[0]} input channels "
                         f"but x {x.shape} has {x.shape[1]} (x is (N, C, H, W))")
    if weight.shape[0] % groups:
        raise ValueError(f"{fn}: groups={groups} must divide in_channels, got {weight.shape[0]} "
                         f"(weight {weight.shape})")
    shape = conv_transpose2d_output_shape(x.shape, weight.shape, s, p, op, groups, d)
    if shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"{fn}: the output would be empty: {shape} (input {x.shape}, kernel "
                         f"{weight.shape[2:]}, stride {s}, padding {p}, dilation {d})")
    # The convolution this transposes maps the output back to (hc, wc); it
    # exceeds x's size only when output_padding >= stride (allowed when
    # < dilation): x is then zero-extended to it (a rare configuration).
    hc = (shape[2] + 2 * p[0] - d[0] * (weight.shape[2] - 1) - 1) // s[0] + 1
    wc = (shape[3] + 2 * p[1] - d[1] * (weight.shape[3] - 1) - 1) // s[1] + 1
    return x, weight, groups, s, p, d, shape, (hc, wc)


def _extend(a, hw):
    if a.shape[2:] == tuple(hw):
        return a
    e = np.zeros(a.shape[:2] + tuple(hw), a.dtype)
    e[:, :, :a.shape[2], :a.shape[3]] = a
    return e


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, out=None) -> np.ndarray:
    """Transposed convolution, as ``torch.nn.functional.conv_transpose2d`` (NCHW).

    ``x`` (N, Cin, H, W), ``weight`` (Cin, Cout/groups, kH, kW), ``bias`` (Cout,)
    -> (N, Cout, Ho, Wo), Ho = (H − 1)·sH − 2·pH + dH·(kH − 1) + opH + 1: the
    gradient of ``conv2d`` (with this geometry) with respect to its input,
    plus the bias. ``output_padding`` must be smaller than stride or dilation.
    """
    fn = "conv_transpose2d"
    x, weight, groups, s, p, d, shape, hwc = _transpose_args(
        fn, x, weight, stride, padding, output_padding, groups, dilation)
    if bias is not None:
        bias = _float_tensor(bias, fn, "bias", 1, "(out_channels,)")
    out = _out_array(out, shape, x.dtype, fn)
    _k.conv_transpose2d_forward(_extend(x, hwc), weight, bias, out, s, p, d, groups)
    return out


def conv_transpose2d_backward(x, weight, grad_out, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1, *, need_input=True, need_weight=True,
                              need_bias=True, grad_input=None, grad_weight=None, grad_bias=None,
                              beta=0.0):
    """Gradients of ``conv_transpose2d``: ``(grad_input, grad_weight, grad_bias)``.

    grad_input = conv2d(grad_out, weight) (same geometry); grad_weight = conv2d's
    weight gradient with grad_out as the input and x as the output gradient;
    grad_bias = grad_out summed over N, H, W. ``grad_weight``/``grad_bias`` =
    beta · old + gradient (beta 0 overwrites); None when not needed.
    """
    fn = "conv_transpose2d_backward"
    x, weight, groups, s, p, d, shape, hwc = _transpose_args(
        fn, x, weight, stride, padding, output_padding, groups, dilation)
    grad_out = _float_tensor(grad_out, fn, "grad_out", 4, "(N, out_channels, OH, OW)")
    if grad_out.shape != shape:
        raise ValueError(f"{fn}: grad_out must have shape {shape}, got {grad_out.shape}")
    xe = _extend(x, hwc)
    gi = None
    if need_input:
        gi = _out_array(grad_input, x.shape, x.dtype, fn, "grad_input")
    gie = gi if gi is None or xe is x else np.empty(xe.shape, x.dtype)
    gw = _out_array(grad_weight, weight.shape, x.dtype, fn, "grad_weight") if need_weight else None
    gb = _out_array(grad_bias, (shape[1],), x.dtype, fn, "grad_bias") if need_bias else None
    _k.conv_transpose2d_backward(xe, weight, grad_out, gie, gw, gb, s, p, d, groups, float(beta))
    if gie is not gi:
        gi[...] = gie[:, :, :x.shape[2], :x.shape[3]]
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

