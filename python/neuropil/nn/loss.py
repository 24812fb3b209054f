"""Losses (PyTorch names and arguments).

Protocol: ``forward(pred, target)`` computes the loss AND its gradient in one fused
C++ pass (the gradient lands in a buffer the loss owns and reuses); ``backward()``
returns that gradient.

* ``reduction="mean"`` (default) or ``"sum"``: ``forward`` returns a Python float;
  ``backward(grad_out=None)`` returns d loss / d pred (times ``grad_out``, a scalar,
  when given).
* ``reduction="none"``: ``forward`` returns the per-element losses as an array of
  PyTorch's shape (the pred's shape; without the class axis 1 for CrossEntropyLoss and
  NLLLoss). ``backward(grad_out)`` takes the upstream gradient of that array (its
  shape; None means ones, i.e. the gradient of ``losses.sum()``) and returns
  d / d pred of ``sum(grad_out * losses)``. ``fit``/``evaluate`` need a scalar loss
  and refuse ``"none"``.

In training mode the returned arrays are the loss's own buffers (valid until its next
call); in eval mode they are fresh.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .module import Module

__all__ = ["MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "BCELoss"]

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    _kind = ""  # functional's name of the fused loss
    _record = False  # a loss ends the graph: its calls are not recorded
    _class_axis = False  # the gradient has a class axis 1 that the losses lack
    _reentrant = True

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', "
                             f"got {reduction!r}")
        self.reduction = reduction
        self._grad = None

    def _prepare(self, pred):
        if type(pred) is np.ndarray and pred.dtype.kind == "f" and pred.flags.c_contiguous:
            return pred  # float16 and the like are rejected by the kernel's check
        if not isinstance(pred, np.ndarray) or pred.dtype not in (np.float32, np.float64):
            pred = F._float_input(pred, type(self).__name__, "input")
            if pred.dtype not in (np.float32, np.float64):
                raise TypeError(f"{type(self).__name__}: input must be float32 or float64, "
                                f"got {pred.dtype}")
        elif not pred.flags.c_contiguous:
            pred = np.ascontiguousarray(pred)
        return pred

    def _loss_shape(self, pred) -> tuple:
        return pred.shape

    def _options(self, pred) -> dict:
        return {}

    def forward(self, pred, target):
        pred = self._prepare(pred)
        grad = self._scratch("grad", pred.shape, pred.dtype)
        loss_shape = self._loss_shape(pred)
        losses = self._scratch("losses", loss_shape, pred.dtype) if self.reduction == "none" else None
        try:
            value = F._loss_into(self._kind, pred, target, grad, self.reduction, losses,
                                 **self._options(pred))
        except (ValueError, TypeError) as err:
            raise type(err)(f"{type(self).__name__}: {err}") from None
        # plain attributes (skip Module.__setattr__), rebound by every call
        self.__dict__["_grad"] = grad
        self.__dict__["_losses_shape"] = loss_shape
        return value

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def backward(self, grad_out=None):
        """The gradient of the last forward's loss w.r.t. its input (see the module
        docstring for ``grad_out``). Never modifies ``grad_out``."""
        grad = self._grad
        if grad is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        if grad_out is None:
            return grad
        if self.reduction != "none" or np.ndim(grad_out) == 0:
            if np.ndim(grad_out) != 0:
                raise ValueError(f"{type(self).__name__}: with reduction={self.reduction!r} the "
                                 f"loss is a scalar, so grad_out must be a scalar, got shape "
                                 f"{np.shape(grad_out)}")
            return grad if grad_out == 1 else grad * np.asarray(grad_out, grad.dtype)
        shape = self._losses_shape
        if not isinstance(grad_out, np.ndarray) or grad_out.shape != shape:
            raise ValueError(f"{type(self).__name__}: grad_out must have the losses' shape "
                             f"{shape}, got {np.shape(grad_out)}")
        if grad_out.dtype != grad.dtype or not grad_out.flags.c_contiguous:
            grad_out = np.ascontiguousarray(grad_out, dtype=grad.dtype)
        dx = self._scratch("grad_in", grad.shape, grad.dtype)
        F._scale_loss_grad(grad, grad_out, dx, self._class_axis)
        return dx

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class _ClassLoss(_Loss):
    """Shared by CrossEntropyLoss and NLLLoss: class weights and ignore_index."""
    _class_axis = True

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        name = type(self).__name__
        if weight is not None:
            if isinstance(weight, str):
                raise TypeError(f"{name}: weight must be an array of per-class weights or None, "
                                f"got {weight!r} (pass reduction={weight!r} by keyword)")
            w = np.array(weight, copy=True)
            if w.dtype.kind not in "fiu" or w.ndim != 1 or w.size == 0:
                raise ValueError(f"{name}: weight must be a non-empty 1-D array of per-class "
                                 f"weights (C,), got shape {w.shape} dtype {w.dtype}")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"{name}: weight must be finite")
            # a buffer, as in PyTorch: saved in state_dict, converted by .double()/.float()
            self.register_buffer("weight", np.ascontiguousarray(
                w, dtype=w.dtype if w.dtype.kind == "f" else np.float32))
        else:
            self.weight = None
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"{name}: ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = int(ignore_index)

    def _loss_shape(self, pred) -> tuple:
        return () if pred.ndim == 1 else pred.shape[:1] + pred.shape[2:]

    def _options(self, pred) -> dict:
        w = self.weight
        if w is not None and w.dtype != pred.dtype:
            w = self.__dict__.get("_weight_cast")
            if w is None or w.dtype != pred.dtype or w.shape != self.weight.shape:
                w = self.weight.astype(pred.dtype)
                self.__dict__["_weight_cast"] = w
        return {"weight": w, "ignore_index": self.ignore_index}

    def extra_repr(self) -> str:
        parts = []
        if self.weight is not None:
            parts.append(f"weight=array(shape={self.weight.shape})")
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        parts.append(f"reduction={self.reduction!r}")
        return ", ".join(parts)


class CrossEntropyLoss(_ClassLoss):
    """Softmax cross-entropy of logits over the class axis 1 (PyTorch's
    ``nn.CrossEntropyLoss(weight=None, ignore_index=-100, reduction='mean')``).

    input ``(N, C)``, ``(N, C, d1, ...)`` (per-pixel logits ``(N, C, H, W)``) or ``(C,)``;
    target: integer labels of the input's shape without axis 1 (any integer dtype,
    range-checked; ``ignore_index`` marks positions that count nothing) or
    probabilities / one-hot of the input's shape.
    ``l = w[y] (logsumexp(x) - x[y])``; 'mean' divides by the sum of ``w[y]`` over the
    positions not ignored (all ignored: NaN, as PyTorch). Fused and stable; gradient
    ``w[y] (softmax(x) - onehot(y)) / sum w``.
    """
    _kind = "cross_entropy"


class NLLLoss(_ClassLoss):
    """Negative log-likelihood of log-probabilities (PyTorch's ``nn.NLLLoss``; use after
    ``log_softmax``): ``l = -w[y] x[y]``, with the shapes, ``weight``, ``ignore_index``
    and weighted mean of ``CrossEntropyLoss``."""
    _kind = "nll_loss"


class MSELoss(_Loss):
    """Mean (or sum, or per element) of squared differences; pred and target share one
    shape."""
    _kind = "mse_loss"


class L1Loss(_Loss):
    """Mean (or sum, or per element) of absolute differences (PyTorch's ``nn.L1Loss``);
    gradient ``sign(pred - target)`` (0 where equal)."""
    _kind = "l1_loss"


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of ``sigmoid(input)`` against targets in [0, 1], computed
    from the logits without overflow: ``max(x,0) - x t + log1p(exp(-|x|))``. Any shape:
    per-pixel ``(N, 1, H, W)`` masks work as they are."""
    _kind = "binary_cross_entropy_with_logits"


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities in [0, 1] (PyTorch's ``nn.BCELoss``):
    ``-(t max(log p, -100) + (1-t) max(log(1-p), -100))``. An input outside [0, 1]
    raises ValueError. Prefer ``BCEWithLogitsLoss`` on logits: it is fused with the
    sigmoid and stable where the probabilities round to 0 or 1."""
    _kind = "binary_cross_entropy"
