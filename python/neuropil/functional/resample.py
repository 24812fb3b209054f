"""Resampling (PyTorch's ``F.interpolate``, modes nearest / linear / bilinear).

Kernels and index rules: cpp/include/neuropil/resample.h.
"""
from __future__ import annotations

import math

import numpy as np

from ._common import _as_array, _k, _out_array

__all__ = ["interpolate", "interpolate_backward", "interpolate_output_shape"]

_MODE_CODE = {"nearest": 0, "linear": 1, "bilinear": 1}
_MODE_RANK = {"linear": 3, "bilinear": 4}
_SPATIAL = {3: "(N, C, L)", 4: "(N, C, H, W)"}


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _per_axis(v, dim: int, fn: str, name: str, check, what: str) -> tuple:
    if isinstance(v, (tuple, list)):
        if len(v) != dim:
            raise ValueError(f"{fn}: {name} must have {dim} entries (one per spatial axis of "
                             f"the input), got {v!r}")
        items = tuple(v)
    else:
        items = (v,) * dim
    if not all(check(e) for e in items):
        raise TypeError(f"{fn}: {name} must be {what} or a tuple of {dim}, got {v!r}")
    return items


def _plan(fn: str, shape: tuple, size, scale_factor, mode, align_corners,
          recompute_scale_factor):
    """(output spatial size, scales for the kernel (-1: none), mode code, align_corners)."""
    if not isinstance(mode, str) or mode not in _MODE_CODE:
        raise ValueError(f"{fn}: mode must be 'nearest', 'linear' (3-D input) or 'bilinear' "
                         f"(4-D input), got {mode!r}")
    rank = len(shape)
    if rank not in (3, 4):
        raise ValueError(f"{fn}: input must be 3-D (N, C, L) or 4-D (N, C, H, W), got shape "
                         f"{tuple(shape)}")
    if mode in _MODE_RANK and _MODE_RANK[mode] != rank:
        want = _MODE_RANK[mode]
        raise ValueError(f"{fn}: mode {mode!r} needs {want}-D input {_SPATIAL[want]}, got "
                         f"{rank}-D input of shape {tuple(shape)}")
    if mode == "nearest":
        if align_corners is not None:
            raise ValueError(f"{fn}: align_corners can only be set with the interpolating "
                             f"modes 'linear' and 'bilinear', not {mode!r}")
        align_corners = False
    elif align_corners is None:
        align_corners = False
    elif not isinstance(align_corners, (bool, np.bool_)):
        raise TypeError(f"{fn}: align_corners must be a bool or None, got {align_corners!r}")
    if recompute_scale_factor is not None and not isinstance(recompute_scale_factor,
                                                             (bool, np.bool_)):
        raise TypeError(f"{fn}: recompute_scale_factor must be a bool or None, got "
                        f"{recompute_scale_factor!r}")
    dim = rank - 2
    in_sizes = tuple(int(s) for s in shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError(f"{fn}: only one of size or scale_factor should be given")
    if size is None and scale_factor is None:
        raise ValueError(f"{fn}: either size or scale_factor must be given")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError(f"{fn}: recompute_scale_factor is not meaningful with an "
                             f"explicit size")
        out_sizes = tuple(int(s) for s in _per_axis(size, dim, fn, "size", _is_int, "an int"))
        scales = (-1.0,) * dim
    else:
        factors = tuple(float(s) for s in _per_axis(scale_factor, dim, fn, "scale_factor",
                                                     _is_real, "a number"))
        if not all(math.isfinite(s) and s > 0 for s in factors):
            raise ValueError(f"{fn}: scale_factor must be positive and finite, got "
                             f"{scale_factor!r}")
        out_sizes = tuple(math.floor(float(i) * s) for i, s in zip(in_sizes, factors))
        scales = (-1.0,) * dim if recompute_scale_factor else factors
    if min(in_sizes) < 1 or min(out_sizes) < 1:
        raise ValueError(f"{fn}: input and output sizes must be greater than 0, got input "
                         f"{in_sizes} and output {out_sizes}")
    if max(out_sizes) > 2**31:
        raise ValueError(f"{fn}: output size {out_sizes} is absurd (more than 2**31)")
    return out_sizes, scales, _MODE_CODE[mode], bool(align_corners)


def interpolate_output_shape(input_shape, size=None, scale_factor=None, mode="nearest",
                             align_corners=None, recompute_scale_factor=None) -> tuple:
    """The output shape ``interpolate`` gives for an input of ``input_shape``."""
    out_sizes, _, _, _ = _plan("interpolate", tuple(input_shape), size, scale_factor, mode,
                               align_corners, recompute_scale_factor)
    return tuple(input_shape[:2]) + out_sizes


def _check_out(out: np.ndarray, shape: tuple, fn: str, name: str) -> None:
    # checked here, before the 3-D case reshapes it (a reshape could copy)
    if out.shape != shape:
        raise ValueError(f"{fn}: {name} must have shape {shape}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{fn}: {name} must be C-contiguous, since it is written in place")


def _as_4d(shape: tuple) -> tuple:
    return shape if len(shape) == 4 else (shape[0], shape[1], 1, shape[2])


def _scales_4d(scales: tuple) -> tuple:
    return scales if len(scales) == 2 else (-1.0, scales[0])


def _float_nd(x, fn: str, name: str) -> np.ndarray:
    x = _as_array(x, fn, name)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {x.dtype}")
    if x.ndim not in (3, 4):
        raise ValueError(f"{fn}: {name} must be 3-D (N, C, L) or 4-D (N, C, H, W), got shape "
                         f"{x.shape}")
    return np.ascontiguousarray(x)


def _interpolate_plan(shape: tuple, size, scale_factor, mode, align_corners,
                      recompute_scale_factor) -> tuple:
    """(output shape, kernel arguments) for the layers, which cache it per input shape."""
    out_sizes, scales, code, ac = _plan("interpolate", shape, size, scale_factor, mode,
                                        align_corners, recompute_scale_factor)
    sh, sw = _scales_4d(scales)
    return tuple(shape[:2]) + out_sizes, (code, sh, sw, ac)


def _interpolate_into(x, out, args) -> None:
    """The layers' form: x, out C-contiguous of the planned shapes (the binding checks)."""
    _k.upsample_forward(x.reshape(_as_4d(x.shape)), out.reshape(_as_4d(out.shape)), *args)


def _interpolate_backward_into(grad_out, out, args) -> None:
    _k.upsample_backward(grad_out.reshape(_as_4d(grad_out.shape)),
                         out.reshape(_as_4d(out.shape)), *args)


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, *, out=None) -> np.ndarray:
    """Resample (N, C, L) or (N, C, H, W) to a new spatial size, as PyTorch's ``F.interpolate``.

    Exactly one of ``size`` (int or tuple) and ``scale_factor`` (number or tuple) is
    given; with a scale factor the output size is ``floor(in · s)`` and, unless
    ``recompute_scale_factor=True``, the kernel maps coordinates with ``1/s`` (else
    ``in/out``), as PyTorch does. Modes:

    * ``"nearest"``: ``src = min(floor(dst · in/out), in − 1)`` (PyTorch's legacy nearest,
      computed in float32 arithmetic like PyTorch; exact copies for out = in and
      ``dst >> 1`` for out = 2·in);
    * ``"linear"`` (3-D) / ``"bilinear"`` (4-D): ``align_corners=False`` (default) samples
      at half-pixel centres ``src = max((dst + 0.5)·in/out − 0.5, 0)``, ``True`` at
      ``src = dst·(in − 1)/(out − 1)``; edges clamp.

    Upsampling and downsampling, any ratio. Deterministic; NaN propagates.
    """
    fn = "interpolate"
    x = _float_nd(input, fn, "input")
    out_sizes, scales, code, ac = _plan(fn, x.shape, size, scale_factor, mode, align_corners,
                                        recompute_scale_factor)
    shape = tuple(x.shape[:2]) + out_sizes
    out = _out_array(out, shape, x.dtype, fn)
    _check_out(out, shape, fn, "out")
    sh, sw = _scales_4d(scales)
    _k.upsample_forward(x.reshape(_as_4d(x.shape)), out.reshape(_as_4d(shape)), code, sh, sw, ac)
    return out


def interpolate_backward(grad_out, input_shape, size=None, scale_factor=None,
                         mode: str = "nearest", align_corners=None, recompute_scale_factor=None,
                         *, out=None) -> np.ndarray:
    """Gradient of ``interpolate`` with respect to its input (of shape ``input_shape``).

    The adjoint of the forward map: every input element receives the sum of the output
    gradients that read it, times their interpolation weights. Deterministic (each
    (n, c) plane summed by one thread in a fixed order).
    """
    fn = "interpolate_backward"
    grad_out = _float_nd(grad_out, fn, "grad_out")
    input_shape = tuple(int(s) for s in input_shape)
    out_sizes, scales, code, ac = _plan(fn, input_shape, size, scale_factor, mode,
                                        align_corners, recompute_scale_factor)
    want = tuple(input_shape[:2]) + out_sizes
    if grad_out.shape != want:
        raise ValueError(f"{fn}: grad_out must have shape {want} (the output for input "
                         f"{input_shape}), got {grad_out.shape}")
    out = _out_array(out, input_shape, grad_out.dtype, fn)
    _check_out(out, input_shape, fn, "out")
    sh, sw = _scales_4d(scales)
    _k.upsample_backward(grad_out.reshape(_as_4d(want)), out.reshape(_as_4d(input_shape)), code,
                         sh, sw, ac)
    return out
