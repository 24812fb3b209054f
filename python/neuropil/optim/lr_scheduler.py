"""Learning-rate schedules with PyTorch's semantics.

Call ``scheduler.step()`` once per epoch, after the optimizer's steps
(``ReduceLROnPlateau.step(metric)`` takes the monitored value). In ``fit``,
the :class:`neuropil.callbacks.LRScheduler` callback does this for you.
"""
from __future__ import annotations

import math

from .optimizer import Optimizer, _check_number

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "ReduceLROnPlateau"]


def _check_optimizer(fn: str, optimizer) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{fn}: optimizer must be a neuropil.optim.Optimizer, "
                        f"got {type(optimizer).__name__}")


class LRScheduler:
    """Base of epoch-indexed schedules: ``lr_e = f(base_lr, e)`` for epoch ``e``
    (0 at construction; each ``step()`` adds one)."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        _check_optimizer(type(self).__name__, optimizer)
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self.step()

    def _lr_at(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def step(self) -> None:
        self.last_epoch += 1
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self._lr_at(base, self.last_epoch)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1):
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        self.step_size = step_size
        self.gamma = _check_number("StepLR", "gamma", gamma, low=0.0)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """``lr = base_lr * gamma ** epoch``."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = _check_number("ExponentialLR", "gamma", gamma, low=0.0)
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** epoch


class ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` once the metric given to
    ``step(metric)`` has not improved for more than ``patience`` epochs.

    Improvement (``threshold_mode="rel"``, ``mode="min"``): ``metric < best *
    (1 - threshold)``; ``"abs"``: ``metric < best - threshold`` (mirrored for
    ``mode="max"``). After a reduction, ``cooldown`` epochs pass before bad
    epochs are counted again; the rate never goes below ``min_lr``, and
    changes smaller than ``eps`` are ignored. PyTorch's semantics.
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr=0.0, eps: float = 1e-8):
        fn = "ReduceLROnPlateau"
        _check_optimizer(fn, optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"{fn}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{fn}: threshold_mode must be 'rel' or 'abs', "
                             f"got {threshold_mode!r}")
        self.factor = _check_number(fn, "factor", factor, low=0.0, high=1.0, high_open=True)
        for name, v in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{fn}: {name} must be a non-negative int, got {v!r}")
        self.optimizer = optimizer
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"{fn}: expected {n} min_lr values, got {len(min_lr)}")
            self.min_lrs = [_check_number(fn, "min_lr", v, low=0.0) for v in min_lr]
        else:
            self.min_lrs = [_check_number(fn, "min_lr", min_lr, low=0.0)] * n
        self.mode, self.threshold_mode = mode, threshold_mode
        self.patience, self.cooldown = patience, cooldown
        self.threshold = _check_number(fn, "threshold", threshold, low=0.0)
        self.eps = _check_number(fn, "eps", eps, low=0.0)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < (best * (1 - self.threshold) if self.threshold_mode == "rel"
                        else best - self.threshold)
        return a > (best * (1 + self.threshold) if self.threshold_mode == "rel"
                    else best + self.threshold)

    def step(self, metrics) -> None:
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for g, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = g["lr"]
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)
