"""Losses, fused with their gradients, and one-hot encoding."""
from __future__ import annotations

import numpy as np

from ._common import _as_array, _float_input, _k, _reduction_code

__all__ = ["one_hot", "cross_entropy", "mse_loss", "binary_cross_entropy_with_logits"]


def _loss_into(kind: str, input, target, grad, reduction: str) -> float:
    """Fused loss + gradient for losses whose input is a C-contiguous float array; the
    target goes through the same conversions as the public functions."""
    if kind == "cross_entropy":
        if type(target) is np.ndarray and target.dtype == np.int64 and target.flags.c_contiguous:
            return _k.cross_entropy(input, target, grad, _reduction_code(reduction, kind))
        return cross_entropy(input, target, reduction, grad=grad)
    if kind == "mse_loss":
        return mse_loss(input, target, reduction, grad=grad)
    return binary_cross_entropy_with_logits(input, target, reduction, grad=grad)



def _labels(target, fn: str) -> np.ndarray:
    """Integer class labels as C-contiguous int64 (any integer dtype accepted)."""
    t = target if isinstance(target, np.ndarray) else _as_array(target, fn, "target")
    if t.dtype.kind not in "iu" or t.dtype == np.bool_:
        raise TypeError(f"{fn}: class labels must be integers, got dtype {t.dtype}")
    if t.dtype.kind == "u" and t.dtype.itemsize == 8 and t.size and int(t.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{fn}: label {int(t.max())} is out of range")
    if t.dtype != np.int64 or not t.flags.c_contiguous:
        t = np.ascontiguousarray(t, dtype=np.int64)
    return t


def one_hot(labels, num_classes: int, *, dtype=np.float32) -> np.ndarray:
    """``(..., num_classes)`` array with 1 at each label's index and 0 elsewhere."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"one_hot: num_classes must be a positive integer, got {num_classes!r}")
    t = _labels(labels, "one_hot")
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        bad = t[(t < 0) | (t >= num_classes)].flat[0]
        raise ValueError(f"one_hot: label {int(bad)} is out of range for {num_classes} classes "
                         f"(expected 0..{num_classes - 1})")
    out = np.zeros(t.shape + (int(num_classes),), dtype=dtype)
    np.put_along_axis(out, t[..., None], 1, axis=-1)
    return out


def cross_entropy(input, target, reduction: str = "mean", *,
                  grad: np.ndarray | None = None) -> float:
    """Softmax cross-entropy of logits ``input`` ``(N, C)``, fused and numerically stable.

    target: integer labels ``(N,)`` (any integer dtype, each in ``0..C-1``) or one-hot /
    probability targets ``(N, C)``. reduction 'mean' (divide by N) or 'sum'. With
    ``grad`` (``(N, C)``, may be ``input`` itself) the gradient ``(softmax - target)/N``
    (mean) is written there in the same pass. Returns the loss as a Python float.
    """
    red = _reduction_code(reduction, "cross_entropy")
    input = _float_input(input, "cross_entropy", "input")
    if isinstance(target, np.ndarray) and target.dtype.kind == "f" or (
            not isinstance(target, np.ndarray) and np.ndim(target) == 2):
        target = _float_input(target, "cross_entropy", "target")
        if target.dtype != input.dtype and input.dtype.kind == "f":
            target = target.astype(input.dtype)
        if target.ndim == 1:
            raise TypeError("cross_entropy: a 1-D target holds class labels and must be "
                            f"integers, got dtype {target.dtype}")
    else:
        target = _labels(target, "cross_entropy")
    return _k.cross_entropy(input, target, grad, red)


def _pointwise_loss(kernel, fn, input, target, reduction, grad):
    red = _reduction_code(reduction, fn)
    input = _float_input(input, fn, "input")
    target = _float_input(target, fn, "target")
    if target.dtype != input.dtype and input.dtype.kind == "f" and target.dtype.kind == "f":
        target = target.astype(input.dtype)
    if target.shape != input.shape:
        raise ValueError(f"{fn}: target must have the input's shape {input.shape}, got "
                         f"{target.shape} (no broadcasting)")
    return kernel(input, target, grad, red)


def mse_loss(input, target, reduction: str = "mean", *, grad: np.ndarray | None = None) -> float:
    """Mean (or sum) of ``(input - target)**2``; with ``grad``, writes ``2 (input - target)/n``."""
    return _pointwise_loss(_k.mse_loss, "mse_loss", input, target, reduction, grad)


def binary_cross_entropy_with_logits(input, target, reduction: str = "mean", *,
                                     grad: np.ndarray | None = None) -> float:
    """``max(x,0) - x t + log1p(exp(-|x|))`` averaged (or summed): BCE of ``sigmoid(x)``
    without overflow; with ``grad``, writes ``(sigmoid(x) - t)/n``."""
    return _pointwise_loss(_k.bce_with_logits, "binary_cross_entropy_with_logits", input, target,
                           reduction, grad)

