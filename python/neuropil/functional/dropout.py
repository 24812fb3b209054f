"""Inverted dropout (elements, or whole channels) with counter-based masks (same mask for
any thread count)."""
from __future__ import annotations

import numpy as np

from .._random import get_rng
from ._common import _float_input, _float_tensor, _k, _out_for

__all__ = ["dropout", "dropout_backward", "dropout2d", "dropout2d_backward"]


def _check_p(p, fn: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) \
            or not (0.0 <= float(p) < 1.0):
        raise ValueError(f"{fn}: p must be a probability in [0, 1), got {p!r}")
    return float(p)


def _float_array(x, fn: str, name: str) -> np.ndarray:
    # checked here too: the identity paths (p == 0, eval) never reach the kernel's check
    x = _float_input(x, fn, name)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {x.dtype}")
    return x


def _identity(x: np.ndarray, out, fn: str) -> np.ndarray:
    """``x`` itself, or copied into ``out`` when one is given (it is never left unwritten)."""
    if out is None or out is x:
        return x
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{fn}: out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(f"{fn}: out must have the input's shape {x.shape} and dtype {x.dtype}, "
                         f"got {out.shape} {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{fn}: out is read-only")
    np.copyto(out, x)
    return out


def dropout(x, p: float = 0.5, training: bool = True, *, seed: int | None = None, rng=None,
            out: np.ndarray | None = None) -> np.ndarray:
    """Inverted dropout: zero each element with probability ``p``, scale the rest by 1/(1-p).

    The mask is a pure function of ``(seed, flat index)`` (a counter-based hash), so it
    is the same for any thread count, and ``dropout_backward`` with the same seed
    applies the same mask. ``seed=None`` draws one from ``neuropil._random.get_rng(rng)``.
    ``training=False`` (or p == 0) returns ``x`` unchanged (copied into ``out`` if given).
    """
    p = _check_p(p, "dropout")
    x = _float_array(x, "dropout", "x")
    if not training or p == 0.0:
        return _identity(x, out, "dropout")
    if seed is None:
        seed = int(get_rng(rng).integers(0, 2**63))
    out = _out_for(x, out, "dropout")
    _k.dropout(x, out, p, int(seed), False)
    return out


def dropout_backward(grad_out, p: float, seed: int, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of ``dropout(x, p, seed=seed)``: the same mask and scale applied to grad_out."""
    p = _check_p(p, "dropout_backward")
    grad_out = _float_array(grad_out, "dropout_backward", "grad_out")
    if p == 0.0:
        return _identity(grad_out, out, "dropout_backward")
    out = _out_for(grad_out, out, "dropout_backward")
    _k.dropout(grad_out, out, p, int(seed), True)
    return out



def dropout2d(x, p: float = 0.5, training: bool = True, *, seed: int | None = None, rng=None,
              out: np.ndarray | None = None) -> np.ndarray:
    """Channel dropout of ``x`` (N, C, H, W): each (n, c) plane is zeroed with probability
    ``p``, the kept ones scaled by 1/(1-p) (PyTorch's ``F.dropout2d``).

    The mask is a pure function of ``(seed, n*C + c)`` (the counter-based hash of
    ``dropout``), the same for any thread count; ``dropout2d_backward`` with the same seed
    applies it again. ``seed=None`` draws one from ``neuropil._random.get_rng(rng)``.
    ``training=False`` (or p == 0) returns ``x`` unchanged (copied into ``out`` if given).
    A dropped plane is 0 even where ``x`` is NaN; NaN in a kept plane passes through.
    """
    p = _check_p(p, "dropout2d")
    x = _float_tensor(x, "dropout2d", "x", 4, "(N, C, H, W)")
    if not training or p == 0.0:
        return _identity(x, out, "dropout2d")
    if seed is None:
        seed = int(get_rng(rng).integers(0, 2**63))
    out = _out_for(x, out, "dropout2d")
    _k.dropout2d(x, out, p, int(seed))
    return out


def dropout2d_backward(grad_out, p: float, seed: int, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of ``dropout2d(x, p, seed=seed)``: the same planes kept and scaled."""
    p = _check_p(p, "dropout2d_backward")
    grad_out = _float_tensor(grad_out, "dropout2d_backward", "grad_out", 4, "(N, C, H, W)")
    if p == 0.0:
        return _identity(grad_out, out, "dropout2d_backward")
    out = _out_for(grad_out, out, "dropout2d_backward")
    _k.dropout2d(grad_out, out, p, int(seed))
    return out
