"""Dense layers and activations: linear, bias + activation, ReLU/sigmoid/tanh, LeakyReLU/ELU/
GELU/softplus, softmax.

User-facing functions accept lists (converted with numpy.asarray; integer or bool
lists become float64). NumPy arrays are never cast silently: a non-float array raises
TypeError. Non-contiguous arrays are copied here, visibly. Every ``out=``/``grad=``
array must be C-contiguous, writeable, of the input's dtype and shape; where noted it
may be the input itself (in place).
"""
from __future__ import annotations

import numpy as np

from ._common import _as_array, _float_input, _k, _out_for

_ACT = {"identity": 0, "relu": 1, "sigmoid": 2, "tanh": 3}

__all__ = [
    "linear", "linear_backward", "relu", "sigmoid", "tanh", "relu_backward", "sigmoid_backward",
    "tanh_backward", "bias_activation", "bias_grad", "softmax", "argmax", "log_softmax",
    "softmax_backward", "log_softmax_backward", "leaky_relu", "leaky_relu_backward", "elu",
    "elu_backward", "gelu", "gelu_backward", "softplus", "softplus_backward",
]
_GELU = {"none": 0, "tanh": 1}


# Lean entry points for layers on the training hot path: their arrays are already
# C-contiguous float arrays of one dtype, and the binding validates every argument
# again (dtype, shape, layout, aliasing), so nothing is converted or checked here.
def _linear_into(x, weight, bias, out) -> None:
    _k.linear_forward(x, weight, bias, out, 0)


def _linear_backward_into(grad_out, x, weight, grad_weight, grad_bias, grad_input,
                          beta_weight: float, beta_bias: float) -> None:
    _k.linear_backward(x, weight, grad_out, grad_weight, grad_bias, grad_input, beta_weight,
                       beta_bias)



def _activation_into(code: int, x, out) -> None:
    _k.activation_forward(x, out, code)


def _activation_backward_into(code: int, y, grad_out, out) -> None:
    _k.activation_backward(y, grad_out, out, code)


def _gelu_code(approximate, fn: str) -> int:
    try:
        return _GELU[approximate]
    except (KeyError, TypeError):
        raise ValueError(f"{fn}: approximate must be 'none' or 'tanh', got {approximate!r}") from None


# Hot-path forms of the parametrised activations for the layers (arrays already
# C-contiguous float; the binding validates the rest). `params` is the tuple of
# hyper-parameters in the binding's order.
_POINTWISE = {"leaky_relu": (_k.leaky_relu, _k.leaky_relu_backward),
              "elu": (_k.elu, _k.elu_backward),
              "gelu": (_k.gelu, _k.gelu_backward),
              "softplus": (_k.softplus, _k.softplus_backward)}


def _pointwise_into(name: str, x, out, params) -> None:
    _POINTWISE[name][0](x, out, *params)


def _pointwise_backward_into(name: str, s, grad_out, out, params) -> None:
    _POINTWISE[name][1](s, grad_out, out, *params)


def linear(x, weight, bias=None, *, out: np.ndarray | None = None) -> np.ndarray:
    """``x @ weight.T + bias`` as PyTorch's ``F.linear``.

    x: ``(N, in)`` or ``(..., in)``; weight: ``(out, in)``; bias: ``(out,)`` or None;
    result ``(N, out)`` (``(..., out)``). One GEMM (``trans_b``) into ``out`` followed
    by a fused bias epilogue while the output is still in cache.
    """
    x = _float_input(x, "linear", "input")
    weight = _float_input(weight, "linear", "weight")
    if bias is not None:
        bias = _float_input(bias, "linear", "bias")
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape "
                         f"{weight.shape}")
    if x.ndim < 1:
        raise ValueError(f"linear: input must be (N, {weight.shape[1]}), got a 0-d array")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
    if out is None:
        res = np.empty((x2.shape[0], weight.shape[0]), x.dtype if x.dtype.kind == "f" else np.float64)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"linear: out must be a numpy.ndarray, got {type(out).__name__}")
        if out.ndim != 2 and not out.flags.c_contiguous:  # a reshape would write into a copy
            raise ValueError("linear: out must be C-contiguous, since it is written in place")
        res = out.reshape(-1, weight.shape[0]) if out.ndim != 2 else out
    _k.linear_forward(x2, weight, bias, res, 0)
    if out is not None:
        return out
    return res.reshape(lead + (weight.shape[0],)) if x.ndim != 2 else res


def linear_backward(grad_out, x, weight, *, grad_weight: np.ndarray | None = None,
                    grad_bias: np.ndarray | None = None, grad_input: bool | np.ndarray = True,
                    accumulate_weight: bool = True, accumulate_bias: bool = True):
    """Gradients of ``y = x @ weight.T + bias`` given ``grad_out = dL/dy`` ``(N, out)``.

    Accumulates ``grad_weight += grad_out.T @ x`` (``(out, in)``, one GEMM with beta=1
    straight into the array) and ``grad_bias += grad_out.sum(0)`` when those arrays
    are given (``accumulate_*=False`` overwrites them instead, never reading them).
    Returns ``grad_input = grad_out @ weight`` ``(N, in)``, written into
    ``grad_input`` when it is an array, newly allocated when True, skipped (None
    returned) when False.
    """
    grad_out = _float_input(grad_out, "linear_backward", "grad_out")
    x = _float_input(x, "linear_backward", "input")
    weight = _float_input(weight, "linear_backward", "weight")
    if grad_input is True:
        grad_input = np.empty(x.shape, x.dtype)
    elif grad_input is False:
        grad_input = None
    _k.linear_backward(x, weight, grad_out, grad_weight, grad_bias, grad_input,
                       1.0 if accumulate_weight else 0.0, 1.0 if accumulate_bias else 0.0)
    return grad_input


def _activation(name: str, x, out):
    x = _float_input(x, name, "x")
    out = _out_for(x, out, name)
    _k.activation_forward(x, out, _ACT[name])
    return out


def relu(x, *, out: np.ndarray | None = None) -> np.ndarray:
    """``max(x, 0)`` elementwise (NaN stays NaN); ``out`` may be ``x`` (in place)."""
    return _activation("relu", x, out)


def sigmoid(x, *, out: np.ndarray | None = None) -> np.ndarray:
    """``e^x / (1 + e^x)`` elementwise, without overflow for any ``|x|``."""
    return _activation("sigmoid", x, out)


def tanh(x, *, out: np.ndarray | None = None) -> np.ndarray:
    """Hyperbolic tangent elementwise."""
    return _activation("tanh", x, out)


def _activation_backward(name: str, y, grad_out, out):
    fn = f"{name}_backward"
    y = _float_input(y, fn, "y")
    grad_out = _float_input(grad_out, fn, "grad_out")
    out = _out_for(y, out, fn)
    _k.activation_backward(y, grad_out, out, _ACT[name])
    return out


def relu_backward(y, grad_out, *, out: np.ndarray | None = None) -> np.ndarray:
    """``grad_out * (y > 0)`` from the forward output ``y = relu(x)``; ``out`` may be ``grad_out``."""
    return _activation_backward("relu", y, grad_out, out)


def sigmoid_backward(y, grad_out, *, out: np.ndarray | None = None) -> np.ndarray:
    """``grad_out * y * (1 - y)`` from the forward output ``y = sigmoid(x)``."""
    return _activation_backward("sigmoid", y, grad_out, out)


def tanh_backward(y, grad_out, *, out: np.ndarray | None = None) -> np.ndarray:
    """``grad_out * (1 - y**2)`` from the forward output ``y = tanh(x)``."""
    return _activation_backward("tanh", y, grad_out, out)


def _pointwise(name: str, x, out, inplace: bool, params):
    x = _float_input(x, name, "x")
    if inplace:
        if out is not None:
            raise ValueError(f"{name}: pass either inplace=True or out=, not both")
        out = x
    out = _out_for(x, out, name)
    _POINTWISE[name][0](x, out, *params)
    return out


def _pointwise_backward(name: str, s, grad_out, out, params, s_name: str = "x"):
    fn = f"{name}_backward"
    s = _float_input(s, fn, s_name)
    grad_out = _float_input(grad_out, fn, "grad_out")
    out = _out_for(s, out, fn)
    _POINTWISE[name][1](s, grad_out, out, *params)
    return out


def leaky_relu(x, negative_slope: float = 0.01, inplace: bool = False, *,
               out: np.ndarray | None = None) -> np.ndarray:
    """``x if x > 0 else negative_slope * x`` elementwise (PyTorch's ``F.leaky_relu``).

    Any finite slope (0 gives ReLU, > 1 and < 0 are allowed). ``inplace=True`` writes
    over ``x``; ``out`` may be ``x``. NaN stays NaN.
    """
    return _pointwise("leaky_relu", x, out, inplace, (float(negative_slope),))


def leaky_relu_backward(x, grad_out, negative_slope: float = 0.01, *,
                        out: np.ndarray | None = None) -> np.ndarray:
    """``grad_out if x > 0 else negative_slope * grad_out``, from the forward input ``x``.

    With ``negative_slope >= 0`` the forward output may be passed instead of ``x``
    (``y > 0`` exactly where ``x > 0``); a negative slope needs ``x``. At ``x = 0`` the
    gradient is ``negative_slope * grad_out`` (as PyTorch). ``out`` may be ``grad_out``.
    """
    return _pointwise_backward("leaky_relu", x, grad_out, out, (float(negative_slope),))


def elu(x, alpha: float = 1.0, inplace: bool = False, *,
        out: np.ndarray | None = None) -> np.ndarray:
    """``x if x > 0 else alpha * (exp(x) - 1)`` elementwise (PyTorch's ``F.elu``; the
    exponential part is an ``expm1``, exact near 0). ``inplace=True`` writes over ``x``."""
    return _pointwise("elu", x, out, inplace, (float(alpha),))


def elu_backward(x, grad_out, alpha: float = 1.0, *, is_result: bool = False,
                 out: np.ndarray | None = None) -> np.ndarray:
    """ELU's gradient ``grad_out * (1 if x > 0 else alpha * exp(x))``.

    ``is_result=True``: ``x`` is the forward OUTPUT ``y`` and the gradient is
    ``grad_out * (1 if y > 0 else y + alpha)`` (no exponential; needs ``alpha >= 0``).
    At ``x = 0`` both give ``alpha * grad_out`` (as PyTorch). ``out`` may be ``grad_out``.
    """
    return _pointwise_backward("elu", x, grad_out, out, (float(alpha), bool(is_result)),
                               "y" if is_result else "x")


def gelu(x, approximate: str = "none", *, out: np.ndarray | None = None) -> np.ndarray:
    """Gaussian error linear unit (PyTorch's ``F.gelu``).

    ``approximate='none'``: ``x * Phi(x)`` with ``Phi(x) = erfc(-x / sqrt(2)) / 2`` the
    standard normal CDF; ``'tanh'``: ``x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``
    (computed as ``x * sigmoid(2u)``: no cancellation in the left tail). float32 keeps
    relative accuracy in the tails (a few ulp); ``gelu(-inf)`` is NaN, as in PyTorch.
    """
    return _pointwise("gelu", x, out, False, (_gelu_code(approximate, "gelu"),))


def gelu_backward(x, grad_out, approximate: str = "none", *,
                  out: np.ndarray | None = None) -> np.ndarray:
    """GELU's gradient from the forward input ``x``: ``grad_out * (Phi(x) + x * phi(x))``
    (``phi`` the normal density), or the derivative of the tanh form."""
    return _pointwise_backward("gelu", x, grad_out, out,
                               (_gelu_code(approximate, "gelu_backward"),))


def softplus(x, beta: float = 1.0, threshold: float = 20.0, *,
             out: np.ndarray | None = None) -> np.ndarray:
    """``log(1 + exp(beta * x)) / beta``, or ``x`` where ``beta * x > threshold``
    (PyTorch's ``F.softplus`` and its threshold rule). ``beta`` must be non-zero; the
    logarithm is evaluated stably, so any threshold (even inf) gives finite values."""
    return _pointwise("softplus", x, out, False, (float(beta), float(threshold)))


def softplus_backward(x, grad_out, beta: float = 1.0, threshold: float = 20.0, *,
                      out: np.ndarray | None = None) -> np.ndarray:
    """Softplus's gradient from the forward input ``x``: ``grad_out * sigmoid(beta * x)``,
    or ``grad_out`` where ``beta * x > threshold``."""
    return _pointwise_backward("softplus", x, grad_out, out, (float(beta), float(threshold)))


def bias_activation(x, bias=None, activation: str = "identity", *,
                    out: np.ndarray | None = None) -> np.ndarray:
    """``act(x + bias)`` for x ``(N, C)``, bias ``(C,)`` (row broadcast) in one pass.

    activation: 'identity', 'relu', 'sigmoid' or 'tanh'; ``out`` may be ``x``.
    """
    if activation not in _ACT:
        raise ValueError(f"bias_activation: activation must be one of {sorted(_ACT)}, "
                         f"got {activation!r}")
    x = _float_input(x, "bias_activation", "x")
    if bias is not None:
        bias = _float_input(bias, "bias_activation", "bias")
    out = _out_for(x, out, "bias_activation")
    _k.bias_activation(x, bias, out, _ACT[activation])
    return out


def bias_grad(grad_out, *, out: np.ndarray | None = None, accumulate: bool = False) -> np.ndarray:
    """Column sums of ``grad_out`` ``(N, C)`` -> ``(C,)``; ``accumulate`` adds into ``out``.

    Summed in fixed row chunks folded in order: identical for any thread count.
    """
    grad_out = _float_input(grad_out, "bias_grad", "grad_out")
    if out is None:
        if accumulate:
            raise ValueError("bias_grad: accumulate=True needs out=")
        if grad_out.ndim != 2:
            raise ValueError(f"bias_grad: grad_out must be 2-D (N, C), got shape {grad_out.shape}")
        out = np.empty(grad_out.shape[1], grad_out.dtype)
    _k.bias_grad(grad_out, out, 1.0 if accumulate else 0.0)
    return out


def _softmax(x, axis, out, log: bool):
    fn = "log_softmax" if log else "softmax"
    x = _float_input(x, fn, "x")
    if x.ndim == 0:
        raise ValueError(f"{fn}: x must have at least 1 dimension, got a 0-d array")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) \
            or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{fn}: axis {axis!r} is out of range for an array of rank {x.ndim}")
    axis = int(axis) % x.ndim
    if axis == x.ndim - 1:
        out = _out_for(x, out, fn)
        _k.softmax(x, out, log)
        return out
    # a copy, always: when the moved view is already contiguous (a size-1 axis),
    # ascontiguousarray would return x's own memory and the softmax would overwrite x
    xm = np.array(np.moveaxis(x, axis, -1), order="C", copy=True)
    _k.softmax(xm, xm, log)
    res = np.moveaxis(xm, -1, axis)
    if out is None:
        return np.ascontiguousarray(res)
    np.copyto(out, res)
    return out


def softmax(x, axis: int = -1, *, out: np.ndarray | None = None) -> np.ndarray:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis`` (stable for any finite x).

    >>> softmax([0.5, 1.8, -2.3, 0.9, 0.3]).round(2)
    array([0.14, 0.52, 0.01, 0.21, 0.12])
    """
    return _softmax(x, axis, out, False)


def log_softmax(x, axis: int = -1, *, out: np.ndarray | None = None) -> np.ndarray:
    """``x - max - log(sum(exp(x - max)))`` along ``axis``."""
    return _softmax(x, axis, out, True)


def argmax(x, *, out: np.ndarray | None = None) -> np.ndarray:
    """Index of the maximum along the last axis of a 2-D float array, as int64 ``(N,)``.

    Ties go to the first maximum; a NaN counts as the maximum (as ``numpy.argmax``).
    """
    x = _float_input(x, "argmax", "x")
    if x.ndim != 2:
        raise ValueError(f"argmax: x must be 2-D with shape (N, C), got shape {x.shape}")
    if out is None:
        out = np.empty(x.shape[0], np.int64)
    _k.argmax(x, out)
    return out


def softmax_backward(y, grad_out, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient through softmax over the last axis: ``y * (grad_out - sum(grad_out * y))``."""
    y = _float_input(y, "softmax_backward", "y")
    grad_out = _float_input(grad_out, "softmax_backward", "grad_out")
    out = _out_for(y, out, "softmax_backward")
    _k.softmax_backward(y, grad_out, out, False)
    return out


def log_softmax_backward(y, grad_out, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient through log_softmax over the last axis: ``grad_out - exp(y) * sum(grad_out)``."""
    y = _float_input(y, "log_softmax_backward", "y")
    grad_out = _float_input(grad_out, "log_softmax_backward", "grad_out")
    out = _out_for(y, out, "log_softmax_backward")
    _k.softmax_backward(y, grad_out, out, True)
    return out

