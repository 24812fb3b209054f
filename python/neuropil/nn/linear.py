"""Fully connected layer (PyTorch's ``nn.Linear``): ``y = x @ weight.T + bias``."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from .module import Module, Parameter

__all__ = ["Linear", "Identity", "Flatten"]


def _check_features(value, name: str, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")
    return int(value)


class Linear(Module):
    """``y = x @ weight.T + bias``.

    Shapes: input ``(N, in_features)`` (or ``(..., in_features)``), output
    ``(N, out_features)``; ``weight`` ``(out_features, in_features)``, ``bias``
    ``(out_features,)`` as PyTorch (so ``state_dict`` keys and shapes match).
    Initialisation as PyTorch: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)),
    drawn in float64 from ``neuropil._random.get_rng(rng)`` then cast.

    forward caches the input (a reference, no copy); backward accumulates
    ``weight.grad += dy.T @ x`` (a GEMM with beta=1 straight into the gradient, or
    beta=0 right after ``zero_grad()``, which skips the fill and the read),
    ``bias.grad += dy.sum(0)`` and returns ``dy @ weight``.
    """

    _reentrant = True  # per-call state: the rebound _x, _lead and _scratch buffers

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng=None,
                 dtype=np.float32):
        super().__init__()
        self.in_features = _check_features(in_features, "in_features", "Linear")
        self.out_features = _check_features(out_features, "out_features", "Linear")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"Linear: dtype must be float32 or float64, got {dtype}")
        self.weight = Parameter(np.zeros((self.out_features, self.in_features), dtype))
        self.bias = Parameter(np.zeros(self.out_features, dtype)) if bias else None
        self._x = None
        self._lead = None
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> None:
        """Redraw weight and bias from U(-1/sqrt(in_features), 1/sqrt(in_features))."""
        g = get_rng(rng)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight.data[...] = g.uniform(-bound, bound, self.weight.shape)
        if self.bias is not None:
            self.bias.data[...] = g.uniform(-bound, bound, self.bias.shape)

    def _name(self) -> str:
        return f"Linear({self.in_features}, {self.out_features})"

    def _prepare_input(self, x):
        """Validate ``x`` (errors name the layer); return it as C-contiguous (M, in) and the
        leading dims of the caller's shape (None for a plain (N, in) batch)."""
        w = self.weight.data
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.ndim < 2 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self._name()}: expected input (N, {self.in_features}), "
                             f"got {x.shape}")
        if x.dtype != w.dtype:
            raise TypeError(f"{self._name()}: input is {x.dtype} but the layer's parameters are "
                            f"{w.dtype}; convert the input with .astype(np.{w.dtype}) or the "
                            f"model with .{'double' if x.dtype == np.float64 else 'float'}()")
        lead = x.shape[:-1] if x.ndim != 2 else None
        if x.ndim != 2:
            x = x.reshape(-1, self.in_features)
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        return x, lead

    def forward(self, x):
        w = self.weight.data
        if (type(x) is np.ndarray and x.ndim == 2 and x.shape[1] == self.in_features
                and x.dtype == w.dtype and x.flags.c_contiguous):
            lead = None  # the hot path: nothing to convert
        else:
            x, lead = self._prepare_input(x)
        y = self._scratch("out", (x.shape[0], self.out_features), w.dtype)
        F._linear_into(x, w, None if self.bias is None else self.bias.data, y)
        d = self.__dict__  # plain attributes: skip Module.__setattr__'s registration
        d["_x"] = x
        d["_lead"] = lead
        return y if lead is None else y.reshape(lead + (self.out_features,))

    def _grad_out(self, grad_out) -> np.ndarray:
        x = self._x
        if x is None:
            raise RuntimeError(f"{self._name()}: backward called before forward")
        lead = self._lead
        expect = (x.shape[0], self.out_features) if lead is None else lead + (self.out_features,)
        if type(grad_out) is np.ndarray and grad_out.shape == expect and grad_out.dtype == x.dtype:
            if grad_out.ndim != 2:
                grad_out = grad_out.reshape(-1, self.out_features)
            return grad_out if grad_out.flags.c_contiguous else np.ascontiguousarray(grad_out)
        if not isinstance(grad_out, np.ndarray) or grad_out.dtype != x.dtype:
            raise TypeError(f"{self._name()}: grad_out must be a {x.dtype} array, got "
                            f"{getattr(grad_out, 'dtype', type(grad_out).__name__)}")
        raise ValueError(f"{self._name()}: expected grad_out {expect}, got {grad_out.shape}")

    def _backward(self, grad_out, need_input: bool):
        g = self._grad_out(grad_out)
        x = self._x
        w, b = self.weight, self.bias
        dx = self._scratch("grad_in", x.shape, x.dtype) if need_input else None
        # A gradient just zeroed by zero_grad() is overwritten (beta 0), not accumulated.
        gw, w_zeroed = w._grad_for_write() if w.requires_grad else (None, False)
        gb, b_zeroed = b._grad_for_write() if b is not None and b.requires_grad else (None, False)
        F._linear_backward_into(g, x, w.data, gw, gb, dx, 0.0 if w_zeroed else 1.0,
                                0.0 if b_zeroed else 1.0)
        if dx is not None and self._lead is not None:
            dx = dx.reshape(self._lead + (self.in_features,))
        return dx

    def backward(self, grad_out):
        return self._backward(grad_out, True)

    def backward_params(self, grad_out) -> None:
        self._backward(grad_out, False)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input unchanged (a placeholder, as PyTorch's ``nn.Identity``)."""

    _reentrant = True

    def forward(self, x):
        return x

    def backward(self, grad_out):
        return grad_out


class Flatten(Module):
    """Flattens dims ``start_dim..end_dim`` into one: ``(N, C, H, W) -> (N, C*H*W)``.

    Returns a view when the input is contiguous; backward reshapes the gradient
    back to the input's shape.
    """

    _reentrant = True

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        for name, v in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"Flatten: {name} must be an int, got {v!r}")
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)
        self._in_shape = None

    def forward(self, x):
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        nd = x.ndim
        s = self.start_dim + nd if self.start_dim < 0 else self.start_dim
        e = self.end_dim + nd if self.end_dim < 0 else self.end_dim
        if not (0 <= s < max(nd, 1) and 0 <= e < max(nd, 1) and s <= e):
            raise ValueError(f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}): "
                             f"invalid for an input of shape {x.shape}")
        self._in_shape = x.shape
        if nd == 0:
            return x.reshape(1)
        return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])

    def backward(self, grad_out):
        if self._in_shape is None:
            raise RuntimeError("Flatten: backward called before forward")
        return np.asarray(grad_out).reshape(self._in_shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
