"""The Optimizer base: owns the parameters, their per-parameter state and the
hyper-parameters (in param groups, as PyTorch); a subclass implements the
update of ONE parameter in ``_update`` (STYLE rule 11).

Optimizers know only :class:`neuropil.nn.Parameter` (``.data``, ``.grad``),
so they work on any parameter, not only those of layers::

    p = nn.Parameter([3.0, -1.0])
    opt = optim.SGD([p], lr=0.1)
    for _ in range(100):
        opt.zero_grad()
        p.grad += 2 * p.data          # d/dp of |p|^2
        opt.step()
"""
from __future__ import annotations

import copy
import numbers
from typing import Any, Iterable

import numpy as np

from ..nn.module import Module, Parameter

__all__ = ["Optimizer"]


def _check_number(fn: str, name: str, value, *, low=None, low_open=False, high=None,
                  high_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {type(value).__name__}")
    v = float(value)
    bad = not np.isfinite(v)
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v >= high if high_open else v > high
    if bad:
        lo = "" if low is None else ("> " if low_open else ">= ") + repr(low)
        hi = "" if high is None else ("< " if high_open else "<= ") + repr(high)
        rng = " and ".join(s for s in (lo, hi) if s) or "finite"
        raise ValueError(f"{fn}: invalid {name}={value!r}; expected {rng}")
    return v


class Optimizer:
    """Base class. ``params``: an iterable of Parameters, or of dicts (param
    groups) each with a ``"params"`` list and per-group hyper-parameters that
    override ``defaults``.

    Subclasses define ``_update(p, grad, state, group)`` which updates
    ``p.data`` in place and keeps whatever it needs in the dict ``state``
    (empty at the first step of that parameter). Parameters with
    ``requires_grad=False`` are skipped.
    """

    def __init__(self, params, defaults: dict):
        name = type(self).__name__
        if isinstance(params, Module):
            raise TypeError(f"{name}: params must be an iterable of Parameters; "
                            f"pass model.parameters(), not the model")
        if isinstance(params, Parameter):
            raise TypeError(f"{name}: params must be an iterable of Parameters, got a single "
                            f"Parameter; wrap it in a list: [{'p'}]")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{name}: params must be an iterable of Parameters, "
                            f"got {type(params).__name__}") from None
        if not params:
            raise ValueError(f"{name}: optimizer got an empty parameter list")
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict[Parameter, dict] = {}
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)

    # -- groups -------------------------------------------------------------
    def add_param_group(self, group: dict) -> None:
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a param group must be a dict with a 'params' key")
        ps = group["params"]
        ps = [ps] if isinstance(ps, Parameter) else list(ps)
        for i, p in enumerate(ps):
            if not isinstance(p, Parameter):
                raise TypeError(f"{name}: params[{i}] must be a neuropil.nn.Parameter, "
                                f"got {type(p).__name__}")
        if not ps:
            raise ValueError(f"{name}: optimizer got an empty parameter list")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in ps}) != len(ps) or any(id(p) in seen for p in ps):
            raise ValueError(f"{name}: some parameters appear more than once; "
                             f"each parameter may be given once")
        full = dict(self.defaults)
        full.update({k: v for k, v in group.items() if k != "params"})
        unknown = set(full) - set(self.defaults)
        if unknown:
            raise ValueError(f"{name}: unknown hyper-parameters {sorted(unknown)}; "
                             f"expected some of {sorted(self.defaults)}")
        self._validate_group(full)
        full["params"] = ps
        self.param_groups.append(full)

    def _validate_group(self, group: dict) -> None:
        """Check a group's hyper-parameters (raise ValueError/TypeError); may normalise them."""

    # -- learning rate ------------------------------------------------------
    @property
    def lr(self) -> float:
        """Learning rate of the first group; setting it sets every group's."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value) -> None:
        v = _check_number(type(self).__name__, "lr", value, low=0.0)
        for g in self.param_groups:
            g["lr"] = v

    # -- the loop ---------------------------------------------------------------
    def parameters(self) -> list[Parameter]:
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self) -> None:
        """Reset every parameter's gradient to zero, in place."""
        for p in self.parameters():
            p.zero_grad()

    def step(self, closure=None):
        """Apply one update to every parameter. ``closure`` (optional) recomputes
        and returns the loss, called before the update; its value is returned."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if not p.requires_grad:
                    continue
                if p.grad.shape != p.data.shape or p.grad.dtype != p.data.dtype:
                    raise ValueError(f"{type(self).__name__}.step: a parameter's grad has shape "
                                     f"{p.grad.shape} {p.grad.dtype} but its data has "
                                     f"{p.data.shape} {p.data.dtype}")
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {}
                self._update(p, p.grad, state, group)
        return loss

    def _update(self, p: Parameter, grad: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement _update()")

    # -- state ----------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"state": {index: {name: value}}, "param_groups": [...]}`` with
        parameters replaced by their index in ``parameters()`` order (as
        PyTorch). Arrays are copies."""
        index = {id(p): i for i, p in enumerate(self.parameters())}
        groups = []
        for g in self.param_groups:
            d = {k: v for k, v in g.items() if k != "params"}
            d["params"] = [index[id(p)] for p in g["params"]]
            groups.append(d)
        state = {}
        for p, s in self.state.items():
            if id(p) in index:
                state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                       for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and per-parameter state saved by ``state_dict``.
        Validates group count/sizes and state array shapes before changing anything."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}.load_state_dict: expected a dict with keys "
                             f"'state' and 'param_groups'")
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: {len(groups)} param groups saved, "
                             f"this optimizer has {len(self.param_groups)}")
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"{name}.load_state_dict: group {i} has {len(saved['params'])} "
                                 f"parameters saved, {len(own['params'])} here")
        params = self.parameters()
        problems = []
        new_state: dict[Parameter, dict] = {}
        for key, s in state_dict["state"].items():
            k = int(key)
            if not 0 <= k < len(params):
                problems.append(f"state for parameter index {k} out of range")
                continue
            p = params[k]
            st = {}
            for sk, v in s.items():
                if isinstance(v, np.ndarray):
                    if v.shape != p.data.shape:
                        problems.append(f"state[{k}][{sk!r}]: expected shape {p.data.shape}, "
                                        f"got {v.shape}")
                        continue
                    v = np.array(v, dtype=p.data.dtype, order="C", copy=True)
                st[sk] = v
            new_state[p] = st
        if problems:
            raise ValueError(f"{name}.load_state_dict: " + "; ".join(problems))
        for saved, own in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    own[k] = copy.copy(v)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)
