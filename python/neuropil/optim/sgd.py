"""Stochastic gradient descent (PyTorch's algorithm) plus an L1 penalty."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .optimizer import Optimizer, _check_number

__all__ = ["SGD"]


class SGD(Optimizer):
    """SGD with momentum, dampening, Nesterov momentum, L2 and L1 penalties.

    For each parameter ``w`` with gradient ``grad`` (same shape):

    * ``g = grad + weight_decay * w + l1 * sign(w)``
    * with ``momentum != 0``: ``b = g`` at the first step, then
      ``b = momentum * b + (1 - dampening) * g``; ``g = g + momentum * b`` if
      ``nesterov`` else ``g = b``
    * ``w = w - lr * g``

    This is ``torch.optim.SGD`` for the same arguments (``l1`` is neuropil's
    addition). Runs in one fused C++ pass per parameter
    (``functional.sgd_update_``). State per parameter: ``momentum_buffer``.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, l1: float = 0.0):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                        weight_decay=weight_decay, l1=l1)
        super().__init__(params, defaults)

    def _validate_group(self, g: dict) -> None:
        fn = "SGD"
        g["lr"] = _check_number(fn, "lr", g["lr"], low=0.0)
        g["momentum"] = _check_number(fn, "momentum", g["momentum"], low=0.0)
        g["dampening"] = _check_number(fn, "dampening", g["dampening"])
        g["weight_decay"] = _check_number(fn, "weight_decay", g["weight_decay"], low=0.0)
        g["l1"] = _check_number(fn, "l1", g["l1"], low=0.0)
        if not isinstance(g["nesterov"], (bool, np.bool_)):
            raise TypeError(f"{fn}: nesterov must be a bool, got {type(g['nesterov']).__name__}")
        g["nesterov"] = bool(g["nesterov"])
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError(f"{fn}: nesterov momentum requires a momentum > 0 and zero "
                             f"dampening, got momentum={g['momentum']!r}, "
                             f"dampening={g['dampening']!r}")

    def _update(self, p, grad, state, group) -> None:
        momentum = group["momentum"]
        buf = None
        first = False
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None or buf.shape != p.data.shape or buf.dtype != p.data.dtype:
                buf = state["momentum_buffer"] = np.empty_like(p.data)
                first = True
        F.sgd_update_(p.data, grad, buf, lr=group["lr"], momentum=momentum,
                      dampening=group["dampening"], nesterov=group["nesterov"],
                      weight_decay=group["weight_decay"], l1=group["l1"], first_step=first)
