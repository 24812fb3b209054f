"""NumPy-in, NumPy-out wrappers over neuropil's C++ kernels.

This is the only module that imports the compiled extension. Each function
allocates its output with ``numpy.empty`` (or writes into ``out=``), makes
any layout copy visibly here, and lets the binding validate the rest.
"""
from __future__ import annotations

import numpy as np

from . import _kernels as _k

__all__ = ["gemm"]


def _as_array(x, fn: str, name: str) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if x is None:
        raise TypeError(f"{fn}: {name} must be an array, got None")
    try:
        return np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{fn}: {name} could not be converted to an array: {err}") from None


def _matrix_operand(x: np.ndarray, trans: bool):
    """Return (C-contiguous array, trans flag) describing the same op(x).

    A Fortran-ordered matrix is the transpose of a C-ordered one, so it is
    passed without a copy by flipping the flag; other layouts are copied.
    """
    if x.ndim == 2 and not x.flags.c_contiguous:
        if x.flags.f_contiguous:
            return x.T, not trans
        return np.ascontiguousarray(x), trans
    return x, trans


def gemm(a, b, *, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0,
         beta: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
    """``alpha * op(a) @ op(b) + beta * out`` for float32 or float64 matrices.

    ``op(x)`` is ``x.T`` when the matching ``trans_`` flag is set. ``a`` is
    ``(M, K)`` (``(K, M)`` transposed), ``b`` is ``(K, N)`` (``(N, K)``
    transposed) and the result ``(M, N)``. With ``out`` the result is written
    there in place (``out`` must be C-contiguous, writeable, of the same
    dtype, and must not overlap ``a`` or ``b``); without it a new array is
    returned and ``beta`` must be 0. With ``beta == 0`` the old contents of
    ``out`` are never read, so NaN there cannot leak into the result.
    Non-contiguous inputs are accepted (copied first); Fortran-ordered ones
    are used in place.
    """
    a = _as_array(a, "gemm", "a")
    b = _as_array(b, "gemm", "b")
    if a.ndim != 2:
        raise ValueError(f"gemm: a must be 2-D with shape {'(K, M)' if trans_a else '(M, K)'}, "
                         f"got shape {a.shape}")
    if b.ndim != 2:
        raise ValueError(f"gemm: b must be 2-D with shape {'(N, K)' if trans_b else '(K, N)'}, "
                         f"got shape {b.shape}")
    a_c, ta = _matrix_operand(a, bool(trans_a))
    b_c, tb = _matrix_operand(b, bool(trans_b))
    if out is None:
        if beta != 0:
            raise ValueError(f"gemm: beta={beta!r} needs out= (there is nothing to scale)")
        m = a.shape[1] if trans_a else a.shape[0]
        n = b.shape[0] if trans_b else b.shape[1]
        out = np.empty((m, n), dtype=a.dtype if a.dtype in (np.float32, np.float64) else np.float64)
    elif not isinstance(out, np.ndarray):
        raise TypeError(f"gemm: out must be a numpy.ndarray, got {type(out).__name__}")
    _k.gemm(a_c, b_c, out, ta, tb, float(alpha), float(beta))
    return out


# ---------------------------------------------------------------------------
# Convolution and pooling (NCHW). Kernels: cpp/include/neuropil/{conv,pool}.h
# ---------------------------------------------------------------------------
__all__ += ["conv2d", "conv2d_backward", "conv2d_output_shape", "im2col", "col2im",
            "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
            "pool2d_output_shape"]


def _pair(v, fn: str, name: str, minimum: int) -> tuple:
    """``v`` as a pair of ints >= ``minimum`` (an int means the same for H and W)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (int(v), int(v))
    elif isinstance(v, (tuple, list)) and len(v) == 2 and all(
            isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in v):
        v = (int(v[0]), int(v[1]))
    else:
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {v!r}")
    if v[0] < minimum or v[1] < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {v!r}")
    if max(v) > 2**31:
        raise ValueError(f"{fn}: {name} {v!r} is absurd (more than 2**31)")
    return v


def _float_tensor(x, fn: str, name: str, ndim: int, expected: str) -> np.ndarray:
    x = _as_array(x, fn, name)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D with shape {expected}, got shape {x.shape}")
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    return x


def _out_array(out, shape, dtype, fn: str, name: str = "out") -> np.ndarray:
    if out is None:
        if float(np.prod([float(s) for s in shape])) * np.dtype(dtype).itemsize > 2.0**40:
            raise ValueError(f"{fn}: {name} would have the absurd shape {tuple(shape)}")
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray, got {type(out).__name__}")
    return out


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


def pool2d_output_shape(input_shape, kernel_size, stride=None, padding=0) -> tuple:
    """``(N, C, OH, OW)`` of pooling: OH = (H + 2·pH − kH) // sH + 1 (stride defaults to kernel)."""
    n, c, h, w = input_shape
    kh, kw = _pair(kernel_size, "pool2d", "kernel_size", 1)
    sh, sw = _pair(kernel_size if stride is None else stride, "pool2d", "stride", 1)
    ph, pw = _pair(padding, "pool2d", "padding", 0)
    return (n, c, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)


def _pool_args(fn, x, kernel_size, stride, padding):
    x = _float_tensor(x, fn, "x", 4, "(N, C, H, W)")
    k = _pair(kernel_size, fn, "kernel_size", 1)
    s = k if stride is None else _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    if 2 * p[0] > k[0] or 2 * p[1] > k[1]:
        raise ValueError(f"{fn}: padding {p} must be at most half of kernel_size {k}")
    shape = pool2d_output_shape(x.shape, k, s, p)
    if shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"{fn}: kernel_size {k} is larger than the input {x.shape[2:]} "
                         f"padded by {p} (x is (N, C, H, W) = {x.shape})")
    return x, k, s, p, shape


def max_pool2d(x, kernel_size, stride=None, padding=0, *, return_indices=False, out=None,
               indices=None):
    """Max pooling over (N, C, H, W) -> (N, C, OH, OW), OH = (H + 2·pH − kH) // sH + 1.

    ``stride`` defaults to ``kernel_size``; padding (at most half the kernel)
    never wins. Ties go to the first element in row-major order; NaN
    propagates. With ``return_indices`` also returns int64 indices (N, C, OH, OW)
    of the chosen elements within each H·W plane (for ``max_pool2d_backward``).
    """
    fn = "max_pool2d"
    x, k, s, p, shape = _pool_args(fn, x, kernel_size, stride, padding)
    out = _out_array(out, shape, x.dtype, fn)
    indices = _out_array(indices, shape, np.int64, fn, "indices")
    _k.max_pool2d_forward(x, out, indices, k, s, p)
    return (out, indices) if return_indices else out


def max_pool2d_backward(grad_out, indices, input_shape, kernel_size, stride=None, padding=0, *,
                        out=None) -> np.ndarray:
    """Gradient of ``max_pool2d``: (N, C, H, W) zeros with ``grad_out`` added at ``indices``."""
    fn = "max_pool2d_backward"
    grad_out = _float_tensor(grad_out, fn, "grad_out", 4, "(N, C, OH, OW)")
    indices = _as_array(indices, fn, "indices")
    k = _pair(kernel_size, fn, "kernel_size", 1)
    s = k if stride is None else _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    out = _out_array(out, tuple(input_shape), grad_out.dtype, fn)
    _k.max_pool2d_backward(grad_out, indices, out, k, s, p)
    return out


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True, *,
               out=None) -> np.ndarray:
    """Average pooling over (N, C, H, W) -> (N, C, OH, OW), as PyTorch's ``avg_pool2d``.

    The divisor is the window size (clipped to the padded image) with
    ``count_include_pad``, else the number of real elements in the window.
    """
    fn = "avg_pool2d"
    x, k, s, p, shape = _pool_args(fn, x, kernel_size, stride, padding)
    out = _out_array(out, shape, x.dtype, fn)
    _k.avg_pool2d_forward(x, out, k, s, p, bool(count_include_pad))
    return out


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0,
                        count_include_pad=True, *, out=None) -> np.ndarray:
    """Gradient of ``avg_pool2d``: each window's real elements get grad / divisor."""
    fn = "avg_pool2d_backward"
    grad_out = _float_tensor(grad_out, fn, "grad_out", 4, "(N, C, OH, OW)")
    k = _pair(kernel_size, fn, "kernel_size", 1)
    s = k if stride is None else _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    out = _out_array(out, tuple(input_shape), grad_out.dtype, fn)
    _k.avg_pool2d_backward(grad_out, out, k, s, p, bool(count_include_pad))
    return out
