"""Losses, fused with their gradients, and one-hot encoding.

Every loss takes ``reduction`` 'mean' (default), 'sum' or 'none' (PyTorch's names):
'mean' and 'sum' return the loss as a Python float; 'none' returns the per-element
losses as an array (PyTorch's shape; written into ``out=`` when given). With ``grad=``
(an array shaped like ``input``; it may be ``input`` itself) the gradient is written in
the same pass: d loss / d input for 'mean'/'sum', and for 'none' the gradient of
``losses.sum()`` (``loss_backward`` then applies the upstream gradient of the losses).
Sums are accumulated in float64 in fixed chunks: identical for any thread count.
"""
from __future__ import annotations

import numpy as np

from ._common import _as_array, _float_input, _k, _reduction_code

__all__ = ["one_hot", "cross_entropy", "nll_loss", "mse_loss", "l1_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "loss_backward"]

_POINTWISE = {"mse_loss": _k.mse_loss, "l1_loss": _k.l1_loss,
              "binary_cross_entropy_with_logits": _k.bce_with_logits,
              "binary_cross_entropy": _k.binary_cross_entropy}
_CLASS_LOSSES = ("cross_entropy", "nll_loss")


def _loss_into(kind: str, input, target, grad, reduction: str, losses=None, weight=None,
               ignore_index: int = -100):
    """Fused loss + gradient for the loss layers: ``input`` is a C-contiguous float array,
    ``weight`` already of its dtype; the target goes through the public conversions."""
    if kind == "cross_entropy":
        if type(target) is np.ndarray and target.dtype == np.int64 and target.flags.c_contiguous \
                and input.ndim >= 2:
            return _finish(_k.cross_entropy(input, target, grad, _reduction_code(reduction, kind),
                                            weight, ignore_index, losses), losses)
        return cross_entropy(input, target, reduction, weight=weight, ignore_index=ignore_index,
                             grad=grad, out=losses)
    if kind == "nll_loss":
        return nll_loss(input, target, reduction, weight=weight, ignore_index=ignore_index,
                        grad=grad, out=losses)
    return _pointwise_loss(kind, input, target, reduction, grad, losses)


def _finish(value, losses):
    return value if losses is None else losses


def _labels(target, fn: str) -> np.ndarray:
    """Integer class labels as C-contiguous int64 (any integer dtype accepted)."""
    t = target if isinstance(target, np.ndarray) else _as_array(target, fn, "target")
    if t.dtype.kind not in "iu" or t.dtype == np.bool_:
        raise TypeError(f"{fn}: class labels must be integers, got dtype {t.dtype}")
    if t.dtype.kind == "u" and t.dtype.itemsize == 8 and t.size and int(t.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{fn}: label {int(t.max())} is out of range")
    if t.dtype != np.int64 or not t.flags.c_contiguous:
        # np.array, not ascontiguousarray: that would turn a 0-d label into shape (1,)
        t = np.array(t, dtype=np.int64, order="C")
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


def _class_weight(weight, input: np.ndarray, fn: str):
    if weight is None:
        return None
    w = _float_input(weight, fn, "weight")
    if w.dtype.kind != "f":
        raise TypeError(f"{fn}: weight must be a float array, got dtype {w.dtype}")
    if w.dtype != input.dtype and input.dtype.kind == "f":
        w = w.astype(input.dtype)
    return w


def _ignore_index(value, fn: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{fn}: ignore_index must be an int, got {value!r}")
    if not -2 ** 63 <= value < 2 ** 63:
        raise ValueError(f"{fn}: ignore_index {value} does not fit in int64")
    return int(value)


def _losses_out(out, shape, dtype, red: int, fn: str):
    if red != 2:
        if out is not None:
            raise ValueError(f"{fn}: out= holds per-element losses and needs reduction='none'")
        return None
    if out is None:
        return np.empty(shape, dtype if np.dtype(dtype).kind == "f" else np.float64)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{fn}: out must be a numpy.ndarray, got {type(out).__name__}")
    return out


def _is_probability_target(target, input: np.ndarray) -> bool:
    if isinstance(target, np.ndarray):
        return target.dtype.kind == "f"
    return np.ndim(target) == input.ndim and np.asarray(target).dtype.kind == "f"


def _class_loss(kernel, fn, input, target, reduction, weight, ignore_index, grad, out, allow_probs):
    red = _reduction_code(reduction, fn)
    input = _float_input(input, fn, "input")
    ignore_index = _ignore_index(ignore_index, fn)
    weight = _class_weight(weight, input, fn)
    if _is_probability_target(target, input):
        target = _float_input(target, fn, "target")
        if not allow_probs or target.ndim == input.ndim - 1:
            raise TypeError(f"{fn}: a target of shape {target.shape} holds class labels and must "
                            f"be integers, got dtype {target.dtype}")
        if target.dtype != input.dtype and input.dtype.kind == "f":
            target = target.astype(input.dtype)
    else:
        target = _labels(target, fn)
    unbatched = input.ndim == 1
    if unbatched:  # PyTorch's (C,) input with one label (0-d) or (C,) probabilities
        if isinstance(grad, np.ndarray) and grad.shape != input.shape:  # before the reshape
            raise ValueError(f"{fn}: grad must have the input's shape {input.shape}, got "
                             f"{grad.shape}")
        if target.dtype.kind != "f" and target.ndim != 0:
            raise ValueError(f"{fn}: for an input of shape {input.shape} the target must be one "
                             f"class label (a 0-d integer), got shape {target.shape}")
        input = input.reshape(1, -1)
        target = target.reshape((1,) + target.shape)
        if isinstance(grad, np.ndarray) and grad.ndim == 1 and grad.flags.c_contiguous:
            grad = grad.reshape(1, -1)
    loss_shape = () if unbatched else input.shape[:1] + input.shape[2:]
    out = _losses_out(out, loss_shape, input.dtype, red, fn)
    losses = out.reshape(1) if unbatched and isinstance(out, np.ndarray) and out.ndim == 0 else out
    value = kernel(input, target, grad, red, weight, ignore_index, losses)
    return value if out is None else out


def cross_entropy(input, target, reduction: str = "mean", *, weight=None, ignore_index: int = -100,
                  grad: np.ndarray | None = None, out: np.ndarray | None = None):
    """Softmax cross-entropy of logits over the class axis 1, fused and stable (PyTorch's
    ``F.cross_entropy``).

    input: ``(N, C)``, ``(N, C, d1, d2, ...)`` (e.g. per-pixel logits ``(N, C, H, W)``) or
    ``(C,)``. target: integer class labels of the input's shape without axis 1
    (``(N,)``, ``(N, d1, ...)``; any integer dtype, each in ``0..C-1`` or equal to
    ``ignore_index``), or probabilities / one-hot of the input's shape.
    With labels ``y``: ``l = w[y] * (logsumexp(x) - x[y])``, ``w`` the optional per-class
    ``weight`` ``(C,)`` (1 without); positions whose label is ``ignore_index`` count 0
    and get no gradient; 'mean' divides by the sum of ``w[y]`` over the counted positions
    (PyTorch's weighted mean; every target ignored gives NaN, as PyTorch). With
    probabilities ``t``: ``l = -sum_c w[c] t_c log_softmax(x)_c``, 'mean' divides by the
    number of positions. Gradient (labels, 'mean'): ``w[y] (softmax(x) - onehot(y)) / sum w``.
    """
    return _class_loss(_k.cross_entropy, "cross_entropy", input, target, reduction, weight,
                       ignore_index, grad, out, True)


def nll_loss(input, target, reduction: str = "mean", *, weight=None, ignore_index: int = -100,
             grad: np.ndarray | None = None, out: np.ndarray | None = None):
    """Negative log-likelihood of log-probabilities (PyTorch's ``F.nll_loss``; feed it
    ``log_softmax`` output).

    input ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``; target integer labels of the
    input's shape without axis 1. ``l = -w[y] * input[y]``; ``weight``, ``ignore_index``
    and the reductions as ``cross_entropy``. Gradient: ``-w[y] / sum w`` at the label
    ('mean'), 0 elsewhere.
    """
    return _class_loss(_k.nll_loss, "nll_loss", input, target, reduction, weight, ignore_index,
                       grad, out, False)


def _pointwise_loss(fn, input, target, reduction, grad, out):
    red = _reduction_code(reduction, fn)
    input = _float_input(input, fn, "input")
    target = _float_input(target, fn, "target")
    if target.dtype != input.dtype and input.dtype.kind == "f" and target.dtype.kind == "f":
        target = target.astype(input.dtype)
    if target.shape != input.shape:
        raise ValueError(f"{fn}: target must have the input's shape {input.shape}, got "
                         f"{target.shape} (no broadcasting)")
    out = _losses_out(out, input.shape, input.dtype, red, fn)
    value = _POINTWISE[fn](input, target, grad, red, out)
    return value if out is None else out


def mse_loss(input, target, reduction: str = "mean", *, grad: np.ndarray | None = None,
             out: np.ndarray | None = None):
    """``(input - target)**2`` reduced; with ``grad``, writes ``2 (input - target) / n``
    ('mean')."""
    return _pointwise_loss("mse_loss", input, target, reduction, grad, out)


def l1_loss(input, target, reduction: str = "mean", *, grad: np.ndarray | None = None,
            out: np.ndarray | None = None):
    """``|input - target|`` reduced (PyTorch's ``F.l1_loss``); with ``grad``, writes
    ``sign(input - target) / n`` ('mean'; 0 where they are equal, as PyTorch)."""
    return _pointwise_loss("l1_loss", input, target, reduction, grad, out)


def binary_cross_entropy(input, target, reduction: str = "mean", *,
                         grad: np.ndarray | None = None, out: np.ndarray | None = None):
    """Binary cross-entropy of probabilities ``input`` in [0, 1] (PyTorch's
    ``F.binary_cross_entropy``): ``-(t max(log p, -100) + (1 - t) max(log(1 - p), -100))``,
    the clamp keeping it finite at p = 0 and 1. Gradient ``(p - t) / max(p (1 - p), 1e-12)``
    (/ n for 'mean'), PyTorch's formula. An input outside [0, 1] raises ValueError naming
    it; NaN propagates. Prefer ``binary_cross_entropy_with_logits`` on logits (stabler)."""
    return _pointwise_loss("binary_cross_entropy", input, target, reduction, grad, out)


def binary_cross_entropy_with_logits(input, target, reduction: str = "mean", *,
                                     grad: np.ndarray | None = None,
                                     out: np.ndarray | None = None):
    """``max(x,0) - x t + log1p(exp(-|x|))`` reduced: BCE of ``sigmoid(x)`` without
    overflow, for any shape (e.g. per-pixel ``(N, 1, H, W)`` masks); with ``grad``,
    writes ``(sigmoid(x) - t) / n`` ('mean')."""
    return _pointwise_loss("binary_cross_entropy_with_logits", input, target, reduction, grad, out)


def _scale_loss_grad(grad, grad_out, out, class_axis: bool) -> None:
    if class_axis and grad.ndim == 1:  # unbatched (C,) input, 0-d losses
        if np.ndim(grad_out) != 0:  # reshape(1) would take any one-element shape
            raise ValueError(f"loss_backward: grad_out must be 0-d (the one loss of an "
                             f"unbatched {grad.shape} gradient), got shape {np.shape(grad_out)}")
        if np.shape(out) != grad.shape:  # likewise reshape(1, -1) for out
            raise ValueError(f"loss_backward: out must have the shape of grad {grad.shape}, "
                             f"got {np.shape(out)}")
        grad, out, grad_out = grad.reshape(1, -1), out.reshape(1, -1), grad_out.reshape(1)
    _k.scale_loss_grad(grad, grad_out, out, class_axis)


def loss_backward(grad, grad_out, *, class_axis: bool = False,
                  out: np.ndarray | None = None) -> np.ndarray:
    """The input gradient of a ``reduction='none'`` loss: ``grad * grad_out``.

    ``grad`` is the gradient a 'none' loss wrote (of ``losses.sum()``), ``grad_out`` the
    upstream gradient of its losses (their shape). ``class_axis=True`` for
    ``cross_entropy`` / ``nll_loss``, whose gradient has the class axis 1 that the losses
    lack: ``grad_out`` is broadcast over it. ``out`` may be ``grad``.
    """
    grad = _float_input(grad, "loss_backward", "grad")
    grad_out = _float_input(grad_out, "loss_backward", "grad_out")
    if out is None:
        out = np.empty(grad.shape, grad.dtype if grad.dtype.kind == "f" else np.float64)
    _scale_loss_grad(grad, grad_out, out, class_axis)
    return out
