"""Batch normalisation (PyTorch's ``F.batch_norm``). Kernels: cpp/include/neuropil/norm.h."""
from __future__ import annotations

import numpy as np

from ._common import _as_array, _k, _out_array

__all__ = ["batch_norm", "batch_norm_backward"]

_BN_SHAPES = "(N, C), (N, C, L) or (N, C, H, W)"


def _bn_input(x, fn: str, name: str = "x") -> np.ndarray:
    x = _as_array(x, fn, name)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{fn}: {name} must have shape {_BN_SHAPES}, got shape {x.shape}")
    return np.ascontiguousarray(x)


def _channel_vec(v, x: np.ndarray, fn: str, name: str):
    """None, or a (C,) array of x's dtype (lists are converted; arrays are not cast)."""
    if v is None:
        return None
    if not isinstance(v, np.ndarray):
        v = np.asarray(v, dtype=x.dtype)
    if v.shape != (x.shape[1],):
        raise ValueError(f"{fn}: {name} must have shape ({x.shape[1]},) for the {x.shape[1]} "
                         f"channels of x {x.shape}, got {v.shape}")
    return v


def _values_per_channel(x: np.ndarray) -> int:
    return int(x.shape[0]) * int(np.prod(x.shape[2:], dtype=np.int64))


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5, *, out=None, save_mean=None,
               save_invstd=None, return_stats: bool = False):
    """Batch normalisation over the channels (axis 1) of ``x`` (N, C), (N, C, L) or (N, C, H, W).

    ``y = (x − mean) / sqrt(var + eps) · weight + bias`` per channel, as PyTorch's
    ``F.batch_norm``. With ``training=True`` mean and (biased) var are the batch's, over
    the N·L values of each channel, and ``running_mean``/``running_var`` (if not None)
    are updated in place: ``r = (1 − momentum)·r + momentum·stat``, with the unbiased
    variance ``var·M/(M − 1)`` (M = N·L values per channel; M must exceed 1). With
    ``training=False`` the running statistics are used (they must be given).
    ``weight``/``bias`` None mean 1 and 0. ``return_stats=True`` also returns the
    ``(mean, invstd)`` arrays (C,) that ``batch_norm_backward`` needs. Deterministic for
    any thread count; NaN in a channel propagates to that channel.
    """
    fn = "batch_norm"
    x = _bn_input(x, fn)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{fn}: training must be a bool, got {training!r}")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating, np.integer)):
        raise TypeError(f"{fn}: momentum must be a number, got {momentum!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)):
        raise TypeError(f"{fn}: eps must be a number, got {eps!r}")
    if training and _values_per_channel(x) <= 1:
        raise ValueError(f"{fn}: expected more than 1 value per channel when training, got "
                         f"input of shape {x.shape}")
    if _values_per_channel(x) == 0:
        raise ValueError(f"{fn}: x has no values per channel (empty batch?): shape {x.shape}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{fn}: running_mean and running_var must be given when training=False")
    rm = _channel_vec(running_mean, x, fn, "running_mean")
    rv = _channel_vec(running_var, x, fn, "running_var")
    w = _channel_vec(weight, x, fn, "weight")
    b = _channel_vec(bias, x, fn, "bias")
    c = x.shape[1]
    out = _out_array(out, x.shape, x.dtype, fn)
    save_mean = _out_array(save_mean, (c,), x.dtype, fn, "save_mean")
    save_invstd = _out_array(save_invstd, (c,), x.dtype, fn, "save_invstd")
    _k.batch_norm_forward(x, w, b, rm, rv, save_mean, save_invstd, out, bool(training),
                          float(momentum), float(eps))
    return (out, save_mean, save_invstd) if return_stats else out


def _batch_norm_into(x, running_mean, running_var, weight, bias, batch_stats, momentum, eps,
                     out, save_mean, save_invstd) -> None:
    """The layers' form: no Python-side checks (the binding validates every argument)."""
    _k.batch_norm_forward(x, weight, bias, running_mean, running_var, save_mean, save_invstd,
                          out, batch_stats, momentum, eps)


def _batch_norm_backward_into(x, grad_out, weight, mean, invstd, training, grad_input,
                              grad_weight, grad_bias, beta_weight, beta_bias) -> None:
    """The layers' form: arrays already validated by shape; betas 0 (overwrite) or 1."""
    _k.batch_norm_backward(x, grad_out, weight, mean, invstd, bool(training), grad_input,
                           grad_weight, grad_bias, float(beta_weight), float(beta_bias))


def batch_norm_backward(grad_out, x, mean, invstd, weight=None, training: bool = True, *,
                        need_input=True, need_weight=True, need_bias=True, grad_input=None,
                        grad_weight=None, grad_bias=None, accumulate=False):
    """Gradients of ``batch_norm``: returns ``(grad_input, grad_weight, grad_bias)``.

    ``mean``/``invstd`` are the (C,) arrays ``batch_norm(..., return_stats=True)``
    returned; ``training`` says whether they were batch statistics (then the input
    gradient goes through them: ``dx = weight·invstd·(dy − Σdy/M − (x − mean)·invstd²·
    Σdy(x − mean)/M)``) or running statistics (constants: ``dx = weight·invstd·dy``).
    ``grad_weight = Σ dy·(x − mean)·invstd``, ``grad_bias = Σ dy`` over each channel.
    Each gradient is None when not needed. ``accumulate=True`` adds into the given
    ``grad_weight``/``grad_bias`` (``+=``); otherwise they are overwritten.
    """
    fn = "batch_norm_backward"
    x = _bn_input(x, fn)
    grad_out = _bn_input(grad_out, fn, "grad_out")
    if grad_out.shape != x.shape:
        raise ValueError(f"{fn}: grad_out must have the shape of x {x.shape}, got {grad_out.shape}")
    mean = _channel_vec(mean, x, fn, "mean")
    invstd = _channel_vec(invstd, x, fn, "invstd")
    if mean is None or invstd is None:
        raise ValueError(f"{fn}: mean and invstd are required (from batch_norm(..., "
                         f"return_stats=True))")
    w = _channel_vec(weight, x, fn, "weight")
    if accumulate and ((need_weight and grad_weight is None) or (need_bias and grad_bias is None)):
        raise ValueError(f"{fn}: accumulate=True needs grad_weight= and grad_bias= arrays")
    c = x.shape[1]
    gi = _out_array(grad_input, x.shape, x.dtype, fn, "grad_input") if need_input else None
    gw = _out_array(grad_weight, (c,), x.dtype, fn, "grad_weight") if need_weight else None
    gb = _out_array(grad_bias, (c,), x.dtype, fn, "grad_bias") if need_bias else None
    beta = 1.0 if accumulate else 0.0
    _batch_norm_backward_into(x, grad_out, w, mean, invstd, training, gi, gw, gb, beta, beta)
    return gi, gw, gb
