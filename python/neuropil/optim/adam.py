"""Adam and AMSGrad (PyTorch's algorithm)."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .optimizer import Optimizer, _check_number

__all__ = ["Adam"]


class Adam(Optimizer):
    """Adam (Kingma & Ba), optionally AMSGrad, with L2 ``weight_decay`` added to the gradient.

    For each parameter ``w`` at update ``t = 1, 2, ...``:

    * ``g = grad + weight_decay * w``
    * ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g**2`` (both start at 0)
    * ``v̂ = max(v̂, v)`` with ``amsgrad``, else ``v̂ = v``
    * ``w = w - lr/(1-b1**t) * m / (sqrt(v̂)/sqrt(1-b2**t) + eps)``

    This is ``torch.optim.Adam`` for the same arguments. One fused C++ pass per
    parameter (``functional.adam_update_``). State per parameter: ``step``,
    ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad)
        super().__init__(params, defaults)

    def _validate_group(self, g: dict) -> None:
        fn = "Adam"
        g["lr"] = _check_number(fn, "lr", g["lr"], low=0.0)
        g["eps"] = _check_number(fn, "eps", g["eps"], low=0.0)
        g["weight_decay"] = _check_number(fn, "weight_decay", g["weight_decay"], low=0.0)
        betas = g["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{fn}: betas must be a pair (beta1, beta2), got {betas!r}")
        b1 = _check_number(fn, "betas[0]", betas[0], low=0.0, high=1.0, high_open=True)
        b2 = _check_number(fn, "betas[1]", betas[1], low=0.0, high=1.0, high_open=True)
        g["betas"] = (b1, b2)
        if not isinstance(g["amsgrad"], (bool, np.bool_)):
            raise TypeError(f"{fn}: amsgrad must be a bool, got {type(g['amsgrad']).__name__}")
        g["amsgrad"] = bool(g["amsgrad"])

    def _update(self, p, grad, state, group) -> None:
        if "exp_avg" not in state or state["exp_avg"].shape != p.data.shape \
                or state["exp_avg"].dtype != p.data.dtype:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
        vmax = None
        if group["amsgrad"]:
            vmax = state.get("max_exp_avg_sq")
            if vmax is None or vmax.shape != p.data.shape or vmax.dtype != p.data.dtype:
                vmax = state["max_exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        b1, b2 = group["betas"]
        F.adam_update_(p.data, grad, state["exp_avg"], state["exp_avg_sq"], vmax,
                       lr=group["lr"], beta1=b1, beta2=b2, eps=group["eps"],
                       weight_decay=group["weight_decay"], step=state["step"])
