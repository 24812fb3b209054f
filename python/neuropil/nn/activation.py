"""Activation layers (PyTorch names): ReLU, Sigmoid, Tanh, Softmax, LeakyReLU, ELU, GELU,
Softplus.

ReLU, Sigmoid, Tanh and Softmax cache their OUTPUT ``y`` (their backward formulas are
written in terms of it); the others cache what their gradient needs, named in each
docstring. In training mode every one writes into buffers it owns
(``Module._scratch``). None has parameters; all are reentrant (one instance may be
called several times in one forward: per-call state is rebound, never mutated).
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .module import Module

__all__ = ["ReLU", "Sigmoid", "Tanh", "Softmax", "LeakyReLU", "ELU", "GELU", "Softplus"]


def _input(x, layer: str):
    """``x`` as a C-contiguous float32/float64 array (lists converted, nothing else cast)."""
    if type(x) is not np.ndarray or x.dtype.kind != "f" or not x.flags.c_contiguous:
        x = F._float_input(x, layer, "input")
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{layer}: input must be float32 or float64, got {x.dtype}")
    return x


def _grad_like(grad_out, ref, layer: str):
    if type(grad_out) is not np.ndarray or grad_out.shape != ref.shape \
            or grad_out.dtype != ref.dtype:
        raise ValueError(f"{layer}: expected grad_out {ref.shape} {ref.dtype}, got "
                         f"{getattr(grad_out, 'shape', None)} "
                         f"{getattr(grad_out, 'dtype', type(grad_out).__name__)}")
    if not grad_out.flags.c_contiguous:
        grad_out = np.ascontiguousarray(grad_out)
    return grad_out


def _finite(value, layer: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{layer}: {name} must be a finite number, got {value!r}")
    return float(value)


class _Elementwise(Module):
    _code = 0  # activation code of the kernels (functional._ACT)
    _reentrant = True  # per-call state: the rebound _y and _scratch buffers

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x):
        x = _input(x, type(self).__name__)
        y = self._scratch("out", x.shape, x.dtype)
        F._activation_into(self._code, x, y)
        self.__dict__["_y"] = y  # plain attribute: skip Module.__setattr__
        return y

    def backward(self, grad_out):
        y = self._y
        if y is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        grad_out = _grad_like(grad_out, y, type(self).__name__)
        dx = self._scratch("grad_in", y.shape, y.dtype)
        F._activation_backward_into(self._code, y, grad_out, dx)
        return dx


class ReLU(_Elementwise):
    """``max(x, 0)``; backward ``grad_out * (y > 0)``."""
    _code = F._ACT["relu"]


class Sigmoid(_Elementwise):
    """``e^x / (1 + e^x)`` (stable for large |x|); backward ``grad_out * y * (1 - y)``."""
    _code = F._ACT["sigmoid"]


class Tanh(_Elementwise):
    """``tanh(x)``; backward ``grad_out * (1 - y**2)``."""
    _code = F._ACT["tanh"]


class Softmax(_Elementwise):
    """Softmax along ``dim`` (default the last). For classification prefer returning
    logits and ``CrossEntropyLoss`` (fused, more stable); this layer is for models that
    need probabilities as an output."""

    def __init__(self, dim: int = -1):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"Softmax: dim must be an int, got {dim!r}")
        self.dim = int(dim)

    def forward(self, x):
        x = F._float_input(x, "Softmax", "input")
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(f"Softmax(dim={self.dim}): invalid for an input of shape {x.shape}")
        if self.dim % x.ndim != x.ndim - 1:
            y = F.softmax(x, axis=self.dim)
        else:
            y = self._scratch("out", x.shape, x.dtype)
            F.softmax(x, out=y)
        self._y = y
        return y

    def backward(self, grad_out):
        y = self._y
        if y is None:
            raise RuntimeError("Softmax: backward called before forward")
        if not isinstance(grad_out, np.ndarray) or grad_out.shape != y.shape:
            raise ValueError(f"Softmax: expected grad_out {y.shape}, got "
                             f"{getattr(grad_out, 'shape', None)}")
        axis = self.dim % y.ndim
        if axis == y.ndim - 1:
            dx = self._scratch("grad_in", y.shape, y.dtype)
            return F.softmax_backward(y, grad_out, out=dx)
        ym = np.ascontiguousarray(np.moveaxis(y, axis, -1))
        gm = np.ascontiguousarray(np.moveaxis(grad_out, axis, -1))
        return np.ascontiguousarray(np.moveaxis(F.softmax_backward(ym, gm), -1, axis))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class _Pointwise(Module):
    """A parametrised elementwise activation: ``forward`` caches the one array its
    gradient reads (the input, or the output where ``_from_output()`` says so)."""
    _kernel = ""  # functional's name (F._pointwise_into)
    _reentrant = True

    def __init__(self):
        super().__init__()
        self._saved = None

    def _params(self) -> tuple:  # hyper-parameters of the forward kernel
        raise NotImplementedError

    def _backward_params(self) -> tuple:
        return self._params()

    def _from_output(self) -> bool:
        return False

    def forward(self, x):
        x = _input(x, type(self).__name__)
        y = self._scratch("out", x.shape, x.dtype)
        F._pointwise_into(self._kernel, x, y, self._params())
        self.__dict__["_saved"] = y if self._from_output() else x  # rebound, never mutated
        return y

    def backward(self, grad_out):
        saved = self._saved
        if saved is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        grad_out = _grad_like(grad_out, saved, type(self).__name__)
        dx = self._scratch("grad_in", saved.shape, saved.dtype)
        F._pointwise_backward_into(self._kernel, saved, grad_out, dx, self._backward_params())
        return dx


class LeakyReLU(_Pointwise):
    """``x if x > 0 else negative_slope * x`` (PyTorch's ``nn.LeakyReLU``).

    Any finite ``negative_slope`` (0 is ReLU; > 1 and < 0 are allowed). Backward
    ``grad_out * (1 if x > 0 else negative_slope)`` (``negative_slope`` at ``x = 0``, as
    PyTorch). Caches the output when ``negative_slope >= 0`` (``y > 0`` exactly where
    ``x > 0``), the input otherwise. ``inplace`` is accepted for PyTorch compatibility
    and ignored: the result goes to the layer's own buffer and ``x`` is left untouched.
    """
    _kernel = "leaky_relu"

    def __init__(self, negative_slope: float = 1e-2, inplace: bool = False):
        super().__init__()
        self.negative_slope = _finite(negative_slope, "LeakyReLU", "negative_slope")
        self.inplace = bool(inplace)

    def _params(self):
        return (self.negative_slope,)

    def _from_output(self):
        return self.negative_slope >= 0

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(_Pointwise):
    """``x if x > 0 else alpha * (exp(x) - 1)`` (PyTorch's ``nn.ELU``).

    Backward ``grad_out * (1 if x > 0 else alpha * exp(x))`` (``alpha`` at ``x = 0``).
    Caches the output when ``alpha >= 0`` and then computes the gradient as
    ``y + alpha`` (no exponential in backward), the input otherwise. ``inplace`` is
    accepted and ignored, as for ``LeakyReLU``.
    """
    _kernel = "elu"

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = _finite(alpha, "ELU", "alpha")
        self.inplace = bool(inplace)

    def _params(self):
        return (self.alpha,)

    def _backward_params(self):
        return (self.alpha, self._from_output())

    def _from_output(self):
        return self.alpha >= 0

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class GELU(_Pointwise):
    """Gaussian error linear unit (PyTorch's ``nn.GELU``): ``x * Phi(x)`` with ``Phi`` the
    standard normal CDF (``approximate='none'``), or PyTorch's tanh approximation
    ``x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``'tanh'``).

    Backward ``grad_out * (Phi(x) + x * exp(-x^2/2) / sqrt(2 pi))`` (or the tanh form's
    derivative); caches the input.
    """
    _kernel = "gelu"

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self._code = F.dense._gelu_code(approximate, "GELU")
        self.approximate = approximate

    def _params(self):
        return (self._code,)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softplus(_Pointwise):
    """``log(1 + exp(beta * x)) / beta``, and ``x`` where ``beta * x > threshold``
    (PyTorch's ``nn.Softplus`` with its threshold rule).

    Backward ``grad_out * sigmoid(beta * x)`` (``grad_out`` above the threshold); caches
    the input. ``beta`` must be a finite non-zero number; the logarithm is evaluated
    stably, so a large ``threshold`` never overflows.
    """
    _kernel = "softplus"

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = _finite(beta, "Softplus", "beta")
        if self.beta == 0:
            raise ValueError("Softplus: beta must be non-zero, got 0")
        if isinstance(threshold, bool) or not isinstance(
                threshold, (int, float, np.integer, np.floating)) or math.isnan(threshold):
            raise ValueError(f"Softplus: threshold must be a number, got {threshold!r}")
        self.threshold = float(threshold)

    def _params(self):
        return (self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"
