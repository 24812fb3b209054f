"""NumPy-in, NumPy-out wrappers over neuropil's C++ kernels.

This is the only module that imports the compiled extension. Each function
allocates its output with ``numpy.empty`` (or writes into ``out=``), makes
any layout copy visibly here, and lets the binding validate the rest.
"""
from __future__ import annotations

import numpy as np

from . import _kernels as _k

__all__ = ["gemm", "sgd_update_", "adam_update_"]


def _as_array(x, fn: str, name: str) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if x is None:
        raise TypeError(f"{fn}: {name} must be an array, got None")
    try:
        return np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{fn}: {name} could not be converted to an array: {err}") from None


def _matrix_operand(x: np.ndarray, trans: bool):
    """Return (C-contiguous array, trans flag) describing the same op(x).

    A Fortran-ordered matrix is the transpose of a C-ordered one, so it is
    passed without a copy by flipping the flag; other layouts are copied.
    """
    if x.ndim == 2 and not x.flags.c_contiguous:
        if x.flags.f_contiguous:
            return x.T, not trans
        return np.ascontiguousarray(x), trans
    return x, trans


def gemm(a, b, *, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0,
         beta: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
    """``alpha * op(a) @ op(b) + beta * out`` for float32 or float64 matrices.

    ``op(x)`` is ``x.T`` when the matching ``trans_`` flag is set. ``a`` is
    ``(M, K)`` (``(K, M)`` transposed), ``b`` is ``(K, N)`` (``(N, K)``
    transposed) and the result ``(M, N)``. With ``out`` the result is written
    there in place (``out`` must be C-contiguous, writeable, of the same
    dtype, and must not overlap ``a`` or ``b``); without it a new array is
    returned and ``beta`` must be 0. With ``beta == 0`` the old contents of
    ``out`` are never read, so NaN there cannot leak into the result.
    Non-contiguous inputs are accepted (copied first); Fortran-ordered ones
    are used in place.
    """
    if type(out) is np.ndarray and type(a) is np.ndarray and type(b) is np.ndarray:
        # Fast path: the binding validates everything; only a layout it
        # refuses (non-contiguous, Fortran order) falls through to the copies.
        try:
            _k.gemm(a, b, out, trans_a, trans_b, alpha, beta)
            return out
        except ValueError:
            if a.flags.c_contiguous and b.flags.c_contiguous:
                raise
    a = _as_array(a, "gemm", "a")
    b = _as_array(b, "gemm", "b")
    if a.ndim != 2:
        raise ValueError(f"gemm: a must be 2-D with shape {'(K, M)' if trans_a else '(M, K)'}, "
                         f"got shape {a.shape}")
    if b.ndim != 2:
        raise ValueError(f"gemm: b must be 2-D with shape {'(N, K)' if trans_b else '(K, N)'}, "
                         f"got shape {b.shape}")
    a_c, ta = _matrix_operand(a, bool(trans_a))
    b_c, tb = _matrix_operand(b, bool(trans_b))
    if out is None:
        if beta != 0:
            raise ValueError(f"gemm: beta={beta!r} needs out= (there is nothing to scale)")
        m = a.shape[1] if trans_a else a.shape[0]
        n = b.shape[0] if trans_b else b.shape[1]
        out = np.empty((m, n), dtype=a.dtype if a.dtype in (np.float32, np.float64) else np.float64)
    elif not isinstance(out, np.ndarray):
        raise TypeError(f"gemm: out must be a numpy.ndarray, got {type(out).__name__}")
    _k.gemm(a_c, b_c, out, ta, tb, float(alpha), float(beta))
    return out


# ---------------------------------------------------------------------------
# Dense layers, activations, softmax, losses, dropout (issue 4)
#
# User-facing functions accept lists (converted with numpy.asarray; integer or
# bool lists become float64). NumPy arrays are never cast silently: a non-float
# array raises TypeError. Non-contiguous arrays are copied here, visibly.
# Every ``out=``/``grad=`` array must be C-contiguous, writeable, of the input's
# dtype and shape; where noted it may be the input itself (in place).
# ---------------------------------------------------------------------------

_ACT = {"identity": 0, "relu": 1, "sigmoid": 2, "tanh": 3}
_REDUCTION = {"mean": 0, "sum": 1}

__all__ += [
    "linear", "linear_backward", "relu", "sigmoid", "tanh", "relu_backward", "sigmoid_backward",
    "tanh_backward", "bias_activation", "bias_grad", "softmax", "argmax", "log_softmax", "softmax_backward",
    "log_softmax_backward", "one_hot", "cross_entropy", "mse_loss",
    "binary_cross_entropy_with_logits", "dropout", "dropout_backward",
]


# Lean entry points for layers on the training hot path: their arrays are already
# C-contiguous float arrays of one dtype, and the binding validates every argument
# again (dtype, shape, layout, aliasing), so nothing is converted or checked here.
def _linear_into(x, weight, bias, out) -> None:
    _k.linear_forward(x, weight, bias, out, 0)


def _linear_backward_into(grad_out, x, weight, grad_weight, grad_bias, grad_input,
                          beta_weight: float, beta_bias: float) -> None:
    _k.linear_backward(x, weight, grad_out, grad_weight, grad_bias, grad_input, beta_weight,
                       beta_bias)


def _loss_into(kind: str, input, target, grad, reduction: str) -> float:
    """Fused loss + gradient for losses whose input is a C-contiguous float array; the
    target goes through the same conversions as the public functions."""
    if kind == "cross_entropy":
        if type(target) is np.ndarray and target.dtype == np.int64 and target.flags.c_contiguous:
            return _k.cross_entropy(input, target, grad, _reduction_code(reduction, kind))
        return cross_entropy(input, target, reduction, grad=grad)
    if kind == "mse_loss":
        return mse_loss(input, target, reduction, grad=grad)
    return binary_cross_entropy_with_logits(input, target, reduction, grad=grad)


def _activation_into(code: int, x, out) -> None:
    _k.activation_forward(x, out, code)


def _activation_backward_into(code: int, y, grad_out, out) -> None:
    _k.activation_backward(y, grad_out, out, code)


def _float_input(x, fn: str, name: str) -> np.ndarray:
    """A C-contiguous float array: lists are converted (ints -> float64), arrays are not cast."""
    if not isinstance(x, np.ndarray):
        x = _as_array(x, fn, name)
        if x.dtype.kind in "biu":
            x = x.astype(np.float64)
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    return x


def _out_for(x: np.ndarray, out, fn: str) -> np.ndarray:
    if out is None:
        return np.empty(x.shape, x.dtype if x.dtype.kind == "f" else np.float64)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{fn}: out must be a numpy.ndarray, got {type(out).__name__}")
    return out


def _reduction_code(reduction, fn: str) -> int:
    try:
        return _REDUCTION[reduction]
    except (KeyError, TypeError):
        raise ValueError(f"{fn}: reduction must be 'mean' or 'sum', got {reduction!r}") from None


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
    xm = np.ascontiguousarray(np.moveaxis(x, axis, -1))
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


def _labels(target, fn: str) -> np.ndarray:
    """Integer class labels as C-contiguous int64 (any integer dtype accepted)."""
    t = target if isinstance(target, np.ndarray) else _as_array(target, fn, "target")
    if t.dtype.kind not in "iu" or t.dtype == np.bool_:
        raise TypeError(f"{fn}: class labels must be integers, got dtype {t.dtype}")
    if t.dtype.kind == "u" and t.dtype.itemsize == 8 and t.size and int(t.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{fn}: label {int(t.max())} is out of range")
    if t.dtype != np.int64 or not t.flags.c_contiguous:
        t = np.ascontiguousarray(t, dtype=np.int64)
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


def cross_entropy(input, target, reduction: str = "mean", *,
                  grad: np.ndarray | None = None) -> float:
    """Softmax cross-entropy of logits ``input`` ``(N, C)``, fused and numerically stable.

    target: integer labels ``(N,)`` (any integer dtype, each in ``0..C-1``) or one-hot /
    probability targets ``(N, C)``. reduction 'mean' (divide by N) or 'sum'. With
    ``grad`` (``(N, C)``, may be ``input`` itself) the gradient ``(softmax - target)/N``
    (mean) is written there in the same pass. Returns the loss as a Python float.
    """
    red = _reduction_code(reduction, "cross_entropy")
    input = _float_input(input, "cross_entropy", "input")
    if isinstance(target, np.ndarray) and target.dtype.kind == "f" or (
            not isinstance(target, np.ndarray) and np.ndim(target) == 2):
        target = _float_input(target, "cross_entropy", "target")
        if target.dtype != input.dtype and input.dtype.kind == "f":
            target = target.astype(input.dtype)
        if target.ndim == 1:
            raise TypeError("cross_entropy: a 1-D target holds class labels and must be "
                            f"integers, got dtype {target.dtype}")
    else:
        target = _labels(target, "cross_entropy")
    return _k.cross_entropy(input, target, grad, red)


def _pointwise_loss(kernel, fn, input, target, reduction, grad):
    red = _reduction_code(reduction, fn)
    input = _float_input(input, fn, "input")
    target = _float_input(target, fn, "target")
    if target.dtype != input.dtype and input.dtype.kind == "f" and target.dtype.kind == "f":
        target = target.astype(input.dtype)
    if target.shape != input.shape:
        raise ValueError(f"{fn}: target must have the input's shape {input.shape}, got "
                         f"{target.shape} (no broadcasting)")
    return kernel(input, target, grad, red)


def mse_loss(input, target, reduction: str = "mean", *, grad: np.ndarray | None = None) -> float:
    """Mean (or sum) of ``(input - target)**2``; with ``grad``, writes ``2 (input - target)/n``."""
    return _pointwise_loss(_k.mse_loss, "mse_loss", input, target, reduction, grad)


def binary_cross_entropy_with_logits(input, target, reduction: str = "mean", *,
                                     grad: np.ndarray | None = None) -> float:
    """``max(x,0) - x t + log1p(exp(-|x|))`` averaged (or summed): BCE of ``sigmoid(x)``
    without overflow; with ``grad``, writes ``(sigmoid(x) - t)/n``."""
    return _pointwise_loss(_k.bce_with_logits, "binary_cross_entropy_with_logits", input, target,
                           reduction, grad)


def _check_p(p, fn: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) \
            or not (0.0 <= float(p) < 1.0):
        raise ValueError(f"{fn}: p must be a probability in [0, 1), got {p!r}")
    return float(p)


def dropout(x, p: float = 0.5, training: bool = True, *, seed: int | None = None, rng=None,
            out: np.ndarray | None = None) -> np.ndarray:
    """Inverted dropout: zero each element with probability ``p``, scale the rest by 1/(1-p).

    The mask is a pure function of ``(seed, flat index)`` (a counter-based hash), so it
    is the same for any thread count, and ``dropout_backward`` with the same seed
    applies the same mask. ``seed=None`` draws one from ``neuropil._random.get_rng(rng)``.
    ``training=False`` (or p == 0) returns ``x`` unchanged.
    """
    p = _check_p(p, "dropout")
    x = _float_input(x, "dropout", "x")
    if not training or p == 0.0:
        return x
    if seed is None:
        from ._random import get_rng
        seed = int(get_rng(rng).integers(0, 2**63))
    out = _out_for(x, out, "dropout")
    _k.dropout(x, out, p, int(seed), False)
    return out


def dropout_backward(grad_out, p: float, seed: int, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of ``dropout(x, p, seed=seed)``: the same mask and scale applied to grad_out."""
    p = _check_p(p, "dropout_backward")
    grad_out = _float_input(grad_out, "dropout_backward", "grad_out")
    if p == 0.0:
        return grad_out
    out = _out_for(grad_out, out, "dropout_backward")
    _k.dropout(grad_out, out, p, int(seed), True)
    return out


# ---------------------------------------------------------------------------
# Optimizer updates (fused, in place; formulas in cpp/include/neuropil/optim.h)
# ---------------------------------------------------------------------------

def _update_array(x, fn: str, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray (updated in place), "
                        f"got {type(x).__name__}")
    return x


def sgd_update_(param: np.ndarray, grad: np.ndarray, momentum_buf: np.ndarray | None = None,
                *, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                nesterov: bool = False, weight_decay: float = 0.0, l1: float = 0.0,
                first_step: bool = False) -> np.ndarray:
    """One SGD step on ``param`` in place (PyTorch's ``torch.optim.SGD`` algorithm).

    ``g = grad + weight_decay*w + l1*sign(w)``; with ``momentum``:
    ``b = g`` on the first step, else ``b = momentum*b + (1-dampening)*g``, then
    ``g = g + momentum*b`` (nesterov) or ``g = b``; finally ``w -= lr*g``.
    ``param``, ``grad`` and ``momentum_buf`` (needed when ``momentum != 0``,
    updated in place) share one shape and float dtype and are C-contiguous.
    Returns ``param``.
    """
    fn = "sgd_update_"
    param = _update_array(param, fn, "param")
    grad = _update_array(grad, fn, "grad")
    if momentum_buf is not None:
        momentum_buf = _update_array(momentum_buf, fn, "momentum_buf")
    _k.sgd_update(param, grad, momentum_buf, float(lr), float(momentum), float(dampening),
                  float(weight_decay), float(l1), bool(nesterov), bool(first_step))
    return param


def adam_update_(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
                 exp_avg_sq: np.ndarray, max_exp_avg_sq: np.ndarray | None = None, *,
                 lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, step: int) -> np.ndarray:
    """One Adam step on ``param`` in place (PyTorch's ``torch.optim.Adam`` algorithm).

    ``g = grad + weight_decay*w``; ``m = b1*m + (1-b1)*g``; ``v = b2*v + (1-b2)*g²``;
    ``w -= lr/(1-b1^step) * m / (sqrt(v̂)/sqrt(1-b2^step) + eps)`` where ``v̂`` is
    ``v``, or with ``max_exp_avg_sq`` (AMSGrad) the running maximum of ``v``.
    ``step`` counts updates including this one (>= 1). All arrays share one
    shape and float dtype, are C-contiguous, and the state arrays are updated
    in place. Returns ``param``.
    """
    fn = "adam_update_"
    param = _update_array(param, fn, "param")
    grad = _update_array(grad, fn, "grad")
    exp_avg = _update_array(exp_avg, fn, "exp_avg")
    exp_avg_sq = _update_array(exp_avg_sq, fn, "exp_avg_sq")
    if max_exp_avg_sq is not None:
        max_exp_avg_sq = _update_array(max_exp_avg_sq, fn, "max_exp_avg_sq")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"{fn}: step must be an int, got {type(step).__name__}")
    _k.adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, float(lr), float(beta1),
                   float(beta2), float(eps), float(weight_decay), int(step))
    return param


# ---------------------------------------------------------------------------
# Convolution and pooling (NCHW). Kernels: cpp/include/neuropil/{conv,pool}.h
# ---------------------------------------------------------------------------
__all__ += ["conv2d", "conv2d_backward", "conv2d_output_shape", "im2col", "col2im",
            "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
            "pool2d_output_shape"]


def _pair(v, fn: str, name: str, minimum: int) -> tuple:
    """``v`` as a pair of ints >= ``minimum`` (an int means the same for H and W)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (int(v), int(v))
    elif isinstance(v, (tuple, list)) and len(v) == 2 and all(
            isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in v):
        v = (int(v[0]), int(v[1]))
    else:
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {v!r}")
    if v[0] < minimum or v[1] < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {v!r}")
    if max(v) > 2**31:
        raise ValueError(f"{fn}: {name} {v!r} is absurd (more than 2**31)")
    return v


def _float_tensor(x, fn: str, name: str, ndim: int, expected: str) -> np.ndarray:
    x = _as_array(x, fn, name)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D with shape {expected}, got shape {x.shape}")
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    return x


def _out_array(out, shape, dtype, fn: str, name: str = "out") -> np.ndarray:
    if out is None:
        if float(np.prod([float(s) for s in shape])) * np.dtype(dtype).itemsize > 2.0**40:
            raise ValueError(f"{fn}: {name} would have the absurd shape {tuple(shape)}")
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray, got {type(out).__name__}")
    return out


def conv2d_output_shape(input_shape, weight_shape, stride=1, padding=0, dilation=1) -> tuple:
    """``(N, OC, OH, OW)`` of ``conv2d``: OH = (H + 2·pH − dH·(kH − 1) − 1) // sH + 1."""
    n, _, h, w = input_shape
    oc, _, kh, kw = weight_shape
    sh, sw = _pair(stride, "conv2d", "stride", 1)
    ph, pw = _pair(padding, "conv2d", "padding", 0)
    dh, dw = _pair(dilation, "conv2d", "dilation", 1)
    return (n, oc, (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
            (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, *, out=None) -> np.ndarray:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d`` (NCHW).

    ``x`` (N, C, H, W), ``weight`` (OC, C, kH, kW), ``bias`` (OC,) or None ->
    (N, OC, OH, OW) with OH = (H + 2·pH − dH·(kH − 1) − 1) // sH + 1 (OW alike):
    ``y[n,o,i,j] = b[o] + Σ_{c,p,q} w[o,c,p,q] · x[n, c, i·sH − pH + p·dH, j·sW − pW + q·dW]``
    with zero padding. ``stride``, ``padding``, ``dilation``: int or (h, w) pair.
    Runs as im2col + GEMM in C++ (1×1 stride-1 unpadded kernels skip im2col).
    """
    fn = "conv2d"
    x = _float_tensor(x, fn, "x", 4, "(N, C, H, W)")
    weight = _float_tensor(weight, fn, "weight", 4, "(out_channels, in_channels, kH, kW)")
    if bias is not None:
        bias = _float_tensor(bias, fn, "bias", 1, "(out_channels,)")
    s = _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    d = _pair(dilation, fn, "dilation", 1)
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"{fn}: weight {weight.shape} expects {weight.shape[1]} input channels "
                         f"but x {x.shape} has {x.shape[1]} (x is (N, C, H, W))")
    shape = conv2d_output_shape(x.shape, weight.shape, s, p, d)
    if shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"{fn}: kernel {weight.shape[2:]} (dilation {d}) does not fit the "
                         f"input {x.shape[2:]} padded by {p}; the output would be empty")
    out = _out_array(out, shape, x.dtype, fn)
    _k.conv2d_forward(x, weight, bias, out, s, p, d)
    return out


def conv2d_backward(x, weight, grad_out, stride=1, padding=0, dilation=1, *, need_input=True,
                    need_weight=True, need_bias=True, grad_input=None, grad_weight=None,
                    grad_bias=None, accumulate=False):
    """Gradients of ``conv2d``: returns ``(grad_input, grad_weight, grad_bias)``.

    ``grad_out`` is (N, OC, OH, OW). Each gradient is None when not needed.
    With ``accumulate=True`` the given ``grad_weight``/``grad_bias`` arrays are
    added to (``+=``, as layers do); otherwise they are overwritten.
    ``grad_input`` (N, C, H, W) is always overwritten. One fused C++ pass per
    image: im2col, dW += dY·colsᵀ, db += Σ dY, dX = col2im(Wᵀ·dY).
    """
    fn = "conv2d_backward"
    x = _float_tensor(x, fn, "x", 4, "(N, C, H, W)")
    weight = _float_tensor(weight, fn, "weight", 4, "(out_channels, in_channels, kH, kW)")
    grad_out = _float_tensor(grad_out, fn, "grad_out", 4, "(N, out_channels, OH, OW)")
    s = _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    d = _pair(dilation, fn, "dilation", 1)
    if accumulate and ((need_weight and grad_weight is None) or (need_bias and grad_bias is None)):
        raise ValueError(f"{fn}: accumulate=True needs grad_weight= and grad_bias= arrays")
    gi = _out_array(grad_input, x.shape, x.dtype, fn, "grad_input") if need_input else None
    gw = _out_array(grad_weight, weight.shape, x.dtype, fn, "grad_weight") if need_weight else None
    gb = _out_array(grad_bias, (weight.shape[0],), x.dtype, fn, "grad_bias") if need_bias else None
    _k.conv2d_backward(x, weight, grad_out, gi, gw, gb, s, p, d, 1.0 if accumulate else 0.0)
    return gi, gw, gb


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, *, out=None) -> np.ndarray:
    """Columns of ``x`` (N, C, H, W) -> (N, C·kH·kW, OH·OW).

    ``cols[n, (c·kH + p)·kW + q, i·OW + j] = x[n, c, i·sH − pH + p·dH, j·sW − pW + q·dW]``
    (0 outside the image), so that ``conv2d(x, w) = w.reshape(OC, -1) @ cols``.
    """
    fn = "im2col"
    x = _float_tensor(x, fn, "x", 4, "(N, C, H, W)")
    k = _pair(kernel_size, fn, "kernel_size", 1)
    s, p, d = _pair(stride, fn, "stride", 1), _pair(padding, fn, "padding", 0), _pair(dilation, fn, "dilation", 1)
    n, c, oh, ow = conv2d_output_shape(x.shape, (1, x.shape[1]) + k, s, p, d)
    if oh < 1 or ow < 1:
        raise ValueError(f"{fn}: kernel {k} (dilation {d}) does not fit the input "
                         f"{x.shape[2:]} padded by {p}")
    out = _out_array(out, (n, x.shape[1] * k[0] * k[1], oh * ow), x.dtype, fn)
    _k.im2col(x, out, k, s, p, d)
    return out


def col2im(cols, input_shape, kernel_size, stride=1, padding=0, dilation=1, *, out=None) -> np.ndarray:
    """Adjoint of ``im2col``: (N, C·kH·kW, OH·OW) -> ``input_shape`` (N, C, H, W).

    Each image element receives the sum of every column entry that read it.
    """
    fn = "col2im"
    cols = _float_tensor(cols, fn, "cols", 3, "(N, C*kH*kW, OH*OW)")
    k = _pair(kernel_size, fn, "kernel_size", 1)
    s, p, d = _pair(stride, fn, "stride", 1), _pair(padding, fn, "padding", 0), _pair(dilation, fn, "dilation", 1)
    try:
        input_shape = tuple(int(v) for v in input_shape)
    except TypeError:
        raise TypeError(f"{fn}: input_shape must be a tuple (N, C, H, W), got {input_shape!r}") from None
    if len(input_shape) != 4 or min(input_shape) < 0:
        raise ValueError(f"{fn}: input_shape must be (N, C, H, W), got {input_shape!r}")
    out = _out_array(out, input_shape, cols.dtype, fn)
    _k.col2im(cols, out, k, s, p, d)
    return out


def pool2d_output_shape(input_shape, kernel_size, stride=None, padding=0) -> tuple:
    """``(N, C, OH, OW)`` of pooling: OH = (H + 2·pH − kH) // sH + 1 (stride defaults to kernel)."""
    n, c, h, w = input_shape
    kh, kw = _pair(kernel_size, "pool2d", "kernel_size", 1)
    sh, sw = _pair(kernel_size if stride is None else stride, "pool2d", "stride", 1)
    ph, pw = _pair(padding, "pool2d", "padding", 0)
    return (n, c, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)


def _pool_args(fn, x, kernel_size, stride, padding):
    x = _float_tensor(x, fn, "x", 4, "(N, C, H, W)")
    k = _pair(kernel_size, fn, "kernel_size", 1)
    s = k if stride is None else _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    if 2 * p[0] > k[0] or 2 * p[1] > k[1]:
        raise ValueError(f"{fn}: padding {p} must be at most half of kernel_size {k}")
    shape = pool2d_output_shape(x.shape, k, s, p)
    if shape[2] < 1 or shape[3] < 1:
        raise ValueError(f"{fn}: kernel_size {k} is larger than the input {x.shape[2:]} "
                         f"padded by {p} (x is (N, C, H, W) = {x.shape})")
    return x, k, s, p, shape


def max_pool2d(x, kernel_size, stride=None, padding=0, *, return_indices=False, out=None,
               indices=None):
    """Max pooling over (N, C, H, W) -> (N, C, OH, OW), OH = (H + 2·pH − kH) // sH + 1.

    ``stride`` defaults to ``kernel_size``; padding (at most half the kernel)
    never wins. Ties go to the first element in row-major order; NaN
    propagates. With ``return_indices`` also returns int64 indices (N, C, OH, OW)
    of the chosen elements within each H·W plane (for ``max_pool2d_backward``).
    """
    fn = "max_pool2d"
    x, k, s, p, shape = _pool_args(fn, x, kernel_size, stride, padding)
    out = _out_array(out, shape, x.dtype, fn)
    indices = _out_array(indices, shape, np.int64, fn, "indices")
    _k.max_pool2d_forward(x, out, indices, k, s, p)
    return (out, indices) if return_indices else out


def max_pool2d_backward(grad_out, indices, input_shape, kernel_size, stride=None, padding=0, *,
                        out=None) -> np.ndarray:
    """Gradient of ``max_pool2d``: (N, C, H, W) zeros with ``grad_out`` added at ``indices``."""
    fn = "max_pool2d_backward"
    grad_out = _float_tensor(grad_out, fn, "grad_out", 4, "(N, C, OH, OW)")
    indices = _as_array(indices, fn, "indices")
    k = _pair(kernel_size, fn, "kernel_size", 1)
    s = k if stride is None else _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    out = _out_array(out, tuple(input_shape), grad_out.dtype, fn)
    _k.max_pool2d_backward(grad_out, indices, out, k, s, p)
    return out


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True, *,
               out=None) -> np.ndarray:
    """Average pooling over (N, C, H, W) -> (N, C, OH, OW), as PyTorch's ``avg_pool2d``.

    The divisor is the window size (clipped to the padded image) with
    ``count_include_pad``, else the number of real elements in the window.
    """
    fn = "avg_pool2d"
    x, k, s, p, shape = _pool_args(fn, x, kernel_size, stride, padding)
    out = _out_array(out, shape, x.dtype, fn)
    _k.avg_pool2d_forward(x, out, k, s, p, bool(count_include_pad))
    return out


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0,
                        count_include_pad=True, *, out=None) -> np.ndarray:
    """Gradient of ``avg_pool2d``: each window's real elements get grad / divisor."""
    fn = "avg_pool2d_backward"
    grad_out = _float_tensor(grad_out, fn, "grad_out", 4, "(N, C, OH, OW)")
    k = _pair(kernel_size, fn, "kernel_size", 1)
    s = k if stride is None else _pair(stride, fn, "stride", 1)
    p = _pair(padding, fn, "padding", 0)
    out = _out_array(out, tuple(input_shape), grad_out.dtype, fn)
    _k.avg_pool2d_backward(grad_out, out, k, s, p, bool(count_include_pad))
    return out


# ---------------------------------------------------------------------------
# Recurrent networks (cpp/include/neuropil/rnn.h has the equations and layouts)
# ---------------------------------------------------------------------------

_RNN_MODES = {"rnn_tanh": (1, 1), "rnn_relu": (1, 1), "lstm": (4, 4), "gru": (3, 4)}


def _rnn_mode(mode: str, fn: str):
    if mode not in _RNN_MODES:
        raise ValueError(f"{fn}: mode must be one of {sorted(_RNN_MODES)}, got {mode!r}")
    return _RNN_MODES[mode]


def as_lengths(lengths, batch: int, steps: int, fn: str = "lengths") -> np.ndarray | None:
    """Validate per-sequence lengths: ``None`` or ``batch`` integers in ``[0, steps]`` -> int64."""
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{fn}: lengths must be integers, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"{fn}: lengths must have shape ({batch},) (one per sequence), "
                         f"got {arr.shape}")
    if batch and (arr.min() < 0 or arr.max() > steps):
        raise ValueError(f"{fn}: lengths must lie in [0, {steps}] (the number of time steps), "
                         f"got values in [{arr.min()}, {arr.max()}]")
    return np.ascontiguousarray(arr, dtype=np.int64)


def rnn_cache(mode: str, batch: int, steps: int, input_size: int, hidden: int,
              dtype=np.float32) -> dict:
    """Allocate the arrays one layer-direction needs between forward and backward.

    ``gates (N*T, C*hidden)``, ``xh (N*T, input_size + hidden + 1)`` (each step's
    input, previous state and a one, side by side), for LSTM ``c_prev`` and
    ``tanh_c (N*T, hidden)``, and the backward scratch ``dg (N*T, G*hidden)`` (GRU
    also ``dgh``). Rows are time-major. Allocate once per shape and reuse across calls.
    """
    g, c = _rnn_mode(mode, "rnn_cache")
    rows = int(batch) * int(steps)
    h = int(hidden)
    lstm = mode == "lstm"
    return {
        "gates": np.empty((rows, c * h), dtype),
        "xh": np.empty((rows, int(input_size) + h + 1), dtype),
        "c_prev": np.empty((rows, h), dtype) if lstm else None,
        "tanh_c": np.empty((rows, h), dtype) if lstm else None,
        "dg": np.empty((rows, g * h), dtype),
        "dgh": np.empty((rows, g * h), dtype) if mode == "gru" else None,
    }


def rnn_forward(mode: str, x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None,
                lengths=None, *, batch_first: bool = True, reverse: bool = False,
                y: np.ndarray | None = None, y_col: int = 0, h_n: np.ndarray | None = None,
                c_n: np.ndarray | None = None, cache: dict | None = None):
    """One layer, one direction of an RNN (``mode`` ``"rnn_tanh"``/``"rnn_relu"``), LSTM or GRU.

    ``x (N, T, I)`` (``(T, N, I)`` when not ``batch_first``), ``w_ih (G*H, I)``,
    ``w_hh (G*H, H)``, biases ``(G*H,)`` or None, ``h0``/``c0 (N, H)`` or None
    (zeros), ``lengths (N,)`` or None. Writes ``y[..., y_col:y_col+H]`` (``y``
    is allocated ``(N, T, H)`` when None), ``h_n``/``c_n (N, H)`` and ``cache``
    (see ``rnn_cache``). Returns ``(y, h_n, c_n, cache)``; ``c_n`` is None
    except for LSTM. Steps past ``lengths[n]`` keep the state and output 0.
    """
    fn = "rnn_forward"
    g, _ = _rnn_mode(mode, fn)
    x = _as_array(x, fn, "x")
    if x.ndim != 3:
        raise ValueError(f"{fn}: x must be 3-D with shape "
                         f"{'(N, T, input_size)' if batch_first else '(T, N, input_size)'}, "
                         f"got shape {x.shape}")
    x = np.ascontiguousarray(x)
    w_hh = _as_array(w_hh, fn, "w_hh")
    if w_hh.ndim != 2:
        raise ValueError(f"{fn}: w_hh must be 2-D with shape (gates*hidden, hidden), "
                         f"got shape {w_hh.shape}")
    n, t = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    hidden = w_hh.shape[1]
    lengths = as_lengths(lengths, n, t, fn)
    dt = x.dtype
    if y is None:
        y = np.empty((n, t, hidden) if batch_first else (t, n, hidden), dt)
    if h_n is None:
        h_n = np.empty((n, hidden), dt)
    if mode == "lstm" and c_n is None:
        c_n = np.empty((n, hidden), dt)
    if cache is None:
        cache = rnn_cache(mode, n, t, x.shape[2], hidden, dt)
    _k.rnn_forward(mode, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, y, int(y_col), h_n, c_n,
                   cache["gates"], cache["xh"], cache["c_prev"], cache["tanh_c"],
                   bool(batch_first), bool(reverse))
    return y, h_n, c_n, cache


def rnn_backward(mode: str, x, w_ih, w_hh, cache: dict, dy=None, dh_n=None, dc_n=None,
                 lengths=None, *, dw_ih: np.ndarray, dw_hh: np.ndarray,
                 db_ih: np.ndarray | None = None, db_hh: np.ndarray | None = None,
                 dy_col: int = 0, batch_first: bool = True, reverse: bool = False,
                 dx: np.ndarray | None = None, need_dx: bool = True,
                 dx_accumulate: bool = False, dh0: np.ndarray | None = None,
                 dc0: np.ndarray | None = None):
    """Backward through time of ``rnn_forward`` (same ``x``, weights, lengths, cache).

    ``dy`` is the gradient of the output (columns ``dy_col:dy_col+H`` are read;
    None means zero), ``dh_n``/``dc_n (N, H)`` those of the final states (None:
    zero). Accumulates (+=) into ``dw_ih``, ``dw_hh``, ``db_ih``, ``db_hh``.
    Returns ``(dx, dh0, dc0)``: ``dx`` like ``x`` (written, or added to with
    ``dx_accumulate``; None when ``need_dx`` is False), ``dh0``/``dc0 (N, H)``.
    """
    fn = "rnn_backward"
    _rnn_mode(mode, fn)
    x = np.ascontiguousarray(_as_array(x, fn, "x"))
    if x.ndim != 3:
        raise ValueError(f"{fn}: x must be 3-D, got shape {x.shape}")
    n, t = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    hidden = np.shape(w_hh)[1] if np.ndim(w_hh) == 2 else 0
    lengths = as_lengths(lengths, n, t, fn)
    if dy is not None:
        dy = np.ascontiguousarray(_as_array(dy, fn, "dy"))
    if need_dx and dx is None:
        dx = np.empty_like(x)
    if dh0 is None:
        dh0 = np.empty((n, hidden), x.dtype)
    if mode == "lstm" and dc0 is None:
        dc0 = np.empty((n, hidden), x.dtype)
    _k.rnn_backward(mode, x, w_ih, w_hh, lengths, cache["gates"], cache["xh"],
                    cache["c_prev"], cache["tanh_c"], dy, int(dy_col), dh_n, dc_n, cache["dg"],
                    cache["dgh"], dx if need_dx else None, bool(dx_accumulate), dh0, dc0, dw_ih,
                    dw_hh, db_ih, db_hh, bool(batch_first), bool(reverse))
    return (dx if need_dx else None), dh0, dc0


def _as_indices(indices, fn: str) -> np.ndarray:
    arr = _as_array(indices, fn, "indices")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{fn}: indices must be integers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def embedding(weight, indices, *, out: np.ndarray | None = None) -> np.ndarray:
    """Rows of ``weight (V, E)`` picked by integer ``indices`` (any shape) -> ``indices.shape + (E,)``."""
    weight = _as_array(weight, "embedding", "weight")
    indices = _as_indices(indices, "embedding")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D with shape (num_embeddings, "
                         f"embedding_dim), got shape {weight.shape}")
    weight = np.ascontiguousarray(weight)
    if out is None:
        out = np.empty(indices.shape + (weight.shape[1],), weight.dtype)
    _k.embedding_forward(weight, indices, out)
    return out


def embedding_backward(dout, indices, dweight: np.ndarray) -> np.ndarray:
    """``dweight[indices[m]] += dout[m]`` in a fixed order (deterministic); returns ``dweight``."""
    indices = _as_indices(indices, "embedding_backward")
    dout = np.ascontiguousarray(_as_array(dout, "embedding_backward", "dout"))
    _k.embedding_backward(dout, indices, dweight)
    return dweight


def sum_squares(x) -> float:
    """``sum(x**2)`` accumulated in float64, thread-count independent."""
    return float(_k.sum_squares(np.ascontiguousarray(_as_array(x, "sum_squares", "x"))))


def scale_(x: np.ndarray, alpha: float) -> np.ndarray:
    """``x *= alpha`` in place (C-contiguous float array); returns ``x``."""
    _k.scale_inplace(x, float(alpha))
    return x

__all__ += ["as_lengths", "rnn_cache", "rnn_forward", "rnn_backward", "embedding",
            "embedding_backward", "sum_squares", "scale_"]
