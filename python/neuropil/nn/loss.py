"""Losses (PyTorch names): ``forward(pred, target) -> float``, ``backward() -> grad_pred``.

Each forward computes the loss and its gradient in one fused C++ pass (the
gradient lands in a buffer the loss owns and reuses); ``backward()`` returns it.
Reductions: ``"mean"`` (default) and ``"sum"``.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .module import Module

__all__ = ["MSELoss", "CrossEntropyLoss", "BCEWithLogitsLoss"]


class _Loss(Module):
    _kind = ""  # functional's name of the fused loss
    _record = False  # a loss ends the graph: its calls are not recorded

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean' or 'sum', "
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

    def forward(self, pred, target) -> float:
        pred = self._prepare(pred)
        grad = self._scratch("grad", pred.shape, pred.dtype)
        try:
            loss = F._loss_into(self._kind, pred, target, grad, self.reduction)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{type(self).__name__}: {err}") from None
        self.__dict__["_grad"] = grad  # plain attribute: skip Module.__setattr__
        return loss

    def __call__(self, pred, target) -> float:
        return self.forward(pred, target)

    def backward(self, grad_out=None):
        """The gradient of the last forward's loss w.r.t. its input (times ``grad_out``, a scalar, if given)."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        if grad_out is not None and grad_out != 1:
            return self._grad * grad_out
        return self._grad

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of logits ``(N, C)`` against integer labels ``(N,)`` (any
    integer dtype, range-checked) or one-hot / probability targets ``(N, C)``.

    Fused and stable (max subtraction); gradient ``(softmax - target) / N`` for 'mean'.
    """
    _kind = "cross_entropy"


class MSELoss(_Loss):
    """Mean (or sum) of squared differences; pred and target share one shape."""
    _kind = "mse_loss"


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of ``sigmoid(input)`` against targets in [0, 1], computed
    from the logits without overflow: ``max(x,0) - x t + log1p(exp(-|x|))``."""
    _kind = "binary_cross_entropy_with_logits"
