"""Max and average pooling (NCHW). Kernels: cpp/include/neuropil/pool.h."""
from __future__ import annotations

import numpy as np

from ._common import _as_array, _float_tensor, _k, _out_array, _pair

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "pool2d_output_shape"]


def _pool_size(n, k, s, p, ceil_mode):
    if not ceil_mode:
        return (n + 2 * p - k) // s + 1
    o = -(-(n + 2 * p - k) // s) + 1
    return o - 1 if (o - 1) * s >= n + p else o  # the last window starts inside


def pool2d_output_shape(input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False) -> tuple:
    """``(N, C, OH, OW)`` of pooling: OH = (H + 2·pH − kH) // sH + 1 (stride defaults to kernel).

    With ``ceil_mode`` (PyTorch's rule) the division rounds up, less one when the
    last window would start at or past H + pH (it must start inside the input or
    its left padding)."""
    n, c, h, w = input_shape
    kh, kw = _pair(kernel_size, "pool2d", "kernel_size", 1)
    sh, sw = _pair(kernel_size if stride is None else stride, "pool2d", "stride", 1)
    ph, pw = _pair(padding, "pool2d", "padding", 0)
    return (n, c, _pool_size(h, kh, sh, ph, ceil_mode), _pool_size(w, kw, sw, pw, ceil_mode))


def _pool_args(fn, x, kernel_size, stride, padding, ceil_mode=False):
    x = _float_tensor(x, fn, "x", 4, "(N, C, H, W)")
    k = _pair(kernel_size, fn, "kernel_size", 1)
    s = k if stride is None else _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    if 2 * p[0] > k[0] or 2 * p[1] > k[1]:
        raise ValueError(f"{fn}: padding {p} must be at most half of kernel_size {k}")
    shape = pool2d_output_shape(x.shape, k, s, p, ceil_mode)
    if shape[2] < 1 or shape[3] < 1 or x.shape[2] + 2 * p[0] < k[0] or x.shape[3] + 2 * p[1] < k[1]:
        raise ValueError(f"{fn}: kernel_size {k} is larger than the input {x.shape[2:]} "
                         f"padded by {p} (x is (N, C, H, W) = {x.shape})")
    return x, k, s, p, shape


def max_pool2d(x, kernel_size, stride=None, padding=0, *, ceil_mode=False, return_indices=False,
               out=None, indices=None):
    """Max pooling over (N, C, H, W) -> (N, C, OH, OW), OH = (H + 2·pH − kH) // sH + 1.

    ``stride`` defaults to ``kernel_size``; padding (at most half the kernel)
    never wins. Ties go to the first element in row-major order; NaN
    propagates. With ``return_indices`` also returns int64 indices (N, C, OH, OW)
    of the chosen elements within each H·W plane (for ``max_pool2d_backward``).
    ``ceil_mode``: see ``pool2d_output_shape``.
    """
    fn = "max_pool2d"
    x, k, s, p, shape = _pool_args(fn, x, kernel_size, stride, padding, ceil_mode)
    out = _out_array(out, shape, x.dtype, fn)
    indices = _out_array(indices, shape, np.int64, fn, "indices")
    _k.max_pool2d_forward(x, out, indices, k, s, p, bool(ceil_mode))
    return (out, indices) if return_indices else out


def max_pool2d_backward(grad_out, indices, input_shape, kernel_size, stride=None, padding=0, *,
                        ceil_mode=False, out=None) -> np.ndarray:
    """Gradient of ``max_pool2d``: (N, C, H, W) zeros with ``grad_out`` added at ``indices``."""
    fn = "max_pool2d_backward"
    grad_out = _float_tensor(grad_out, fn, "grad_out", 4, "(N, C, OH, OW)")
    indices = _as_array(indices, fn, "indices")
    k = _pair(kernel_size, fn, "kernel_size", 1)
    s = k if stride is None else _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    out = _out_array(out, tuple(input_shape), grad_out.dtype, fn)
    _k.max_pool2d_backward(grad_out, indices, out, k, s, p, bool(ceil_mode))
    return out


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True, *,
               ceil_mode=False, out=None) -> np.ndarray:
    """Average pooling over (N, C, H, W) -> (N, C, OH, OW), as PyTorch's ``avg_pool2d``.

    The divisor is the window size (clipped to the padded image) with
    ``count_include_pad``, else the number of real elements in the window. With
    ``ceil_mode`` a last window running past the padded input counts only the
    part inside it (PyTorch's divisor).
    """
    fn = "avg_pool2d"
    x, k, s, p, shape = _pool_args(fn, x, kernel_size, stride, padding, ceil_mode)
    out = _out_array(out, shape, x.dtype, fn)
    _k.avg_pool2d_forward(x, out, k, s, p, bool(count_include_pad), bool(ceil_mode))
    return out


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0,
                        count_include_pad=True, *, ceil_mode=False, out=None) -> np.ndarray:
    """Gradient of ``avg_pool2d``: each window's real elements get grad / divisor."""
    fn = "avg_pool2d_backward"
    grad_out = _float_tensor(grad_out, fn, "grad_out", 4, "(N, C, OH, OW)")
    k = _pair(kernel_size, fn, "kernel_size", 1)
    s = k if stride is None else _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    out = _out_array(out, tuple(input_shape), grad_out.dtype, fn)
    _k.avg_pool2d_backward(grad_out, out, k, s, p, bool(count_include_pad), bool(ceil_mode))
    return out


