"""Argument checks, loss/optimizer/metric resolution shared by fit, evaluate and predict."""
from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from .. import nn, optim

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_DEFAULT_METRICS = ("accuracy",)


class DivergenceError(FloatingPointError, ValueError):
    """The loss became NaN or infinite during ``fit`` (the message names epoch and batch)."""


# -- argument handling ------------------------------------------------------------

def _model_dtype(model) -> np.dtype:
    for p in model.parameters():
        return p.data.dtype
    return np.dtype(np.float32)


def _check_int(fn, name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{fn}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def _as_inputs(fn, x, dtype, name="x"):
    if x is None:
        raise TypeError(f"{fn}: {name} must be an array, got None")
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError(f"{fn}: {name} must have a leading sample dimension, got a scalar")
    if x.shape[0] == 0:
        raise ValueError(f"{fn}: {name} is empty (shape {x.shape}); nothing to do")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
            or x.dtype == np.bool_):
        raise TypeError(f"{fn}: {name} must be numeric, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=dtype)  # one conversion up front, none per batch
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"{fn}: {name} contains NaN or inf (first at index {tuple(bad)})")
    return x


def _as_targets(fn, y, n, dtype, name="y"):
    if y is None:
        raise TypeError(f"{fn}: {name} must be an array of targets, got None")
    y = np.asarray(y)
    if y.ndim == 0:
        raise ValueError(f"{fn}: {name} must have a leading sample dimension, got a scalar")
    if y.shape[0] != n:
        xname = "x" if name == "y" else name.replace("y", "x")
        raise ValueError(f"{fn}: {xname} has {n} samples but {name} has {y.shape[0]}; "
                         f"they must have the same length")
    if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        return np.ascontiguousarray(y, dtype=np.int64)
    if np.issubdtype(y.dtype, np.floating):
        y = np.ascontiguousarray(y, dtype=dtype)
        if not np.isfinite(y).all():
            raise ValueError(f"{fn}: {name} contains NaN or inf")
        return y
    raise TypeError(f"{fn}: {name} must hold integer labels or float targets, got {y.dtype}")


def _first_layer_check(fn, model, x):
    """Compare x's feature count with the first parametrised layer's, before any work."""
    flatten = False
    for name, m in model.named_modules():
        if m._modules:
            continue  # containers
        kind = type(m).__name__
        if kind == "Flatten":
            flatten = True
            continue
        label = f"layer {name!r} ({m!r})" if name else repr(m)
        if hasattr(m, "in_features"):
            got = int(np.prod(x.shape[1:])) if flatten else x.shape[-1]
            if got != m.in_features:
                want = f"(N, {m.in_features})" if not flatten else \
                    f"(N, ...) with {m.in_features} values per sample"
                raise ValueError(f"{fn}: x has shape {x.shape} but the first layer, {label}, "
                                 f"expects {want}")
            return
        if hasattr(m, "in_channels") and x.ndim >= 2:
            if x.shape[1] != m.in_channels:
                raise ValueError(f"{fn}: x has shape {x.shape} but the first layer, {label}, "
                                 f"expects {m.in_channels} channels in dimension 1")
            return
        if m._parameters:
            return


def _check_labels(fn, y, pred, name="y"):
    """Integer labels must index the model's outputs."""
    if y.dtype != np.int64 or y.ndim != 1 or pred.ndim != 2:
        return
    classes = pred.shape[1]
    lo, hi = int(y.min()), int(y.max())
    top = max(classes, 2) - 1  # a single output is a binary logit: labels 0 and 1
    if lo < 0 or hi > top:
        raise ValueError(f"{fn}: {name} holds labels from {lo} to {hi} but the model outputs "
                         f"{classes} value(s) per sample, so labels must lie in 0..{top}")


def _resolve_loss(loss):
    if isinstance(loss, str):
        names = {"mse": "MSELoss", "mean_squared_error": "MSELoss",
                 "cross_entropy": "CrossEntropyLoss",
                 "sparse_categorical_crossentropy": "CrossEntropyLoss",
                 "categorical_crossentropy": "CrossEntropyLoss",
                 "bce_with_logits": "BCEWithLogitsLoss",
                 "binary_crossentropy": "BCEWithLogitsLoss",
                 "l1": "L1Loss", "mae": "L1Loss", "mean_absolute_error": "L1Loss",
                 "nll": "NLLLoss", "bce": "BCELoss"}
        cls = getattr(nn, names.get(loss, ""), None)
        if cls is None:
            raise ValueError(f"loss={loss!r} is not a known loss name; pass a loss object "
                             f"(e.g. nn.CrossEntropyLoss()) or one of {sorted(names)}")
        return cls()
    if loss is None or not (hasattr(loss, "forward") and hasattr(loss, "backward")):
        raise TypeError(f"loss must be a loss object with forward(pred, target) and "
                        f"backward(), got {type(loss).__name__}")
    if getattr(loss, "reduction", "mean") == "none":
        raise ValueError(f"loss {type(loss).__name__}(reduction='none') returns per-element "
                         f"losses, but fit and evaluate need one number per batch: use "
                         f"reduction='mean' or 'sum' (or reduce the losses in your own loop)")
    return loss


def _resolve_optimizer(optimizer, model):
    if isinstance(optimizer, str):
        table = {"sgd": lambda ps: optim.SGD(ps, lr=0.01),
                 "adam": lambda ps: optim.Adam(ps, lr=1e-3)}
        if optimizer.lower() not in table:
            raise ValueError(f"optimizer={optimizer!r} is not a known name; pass an optimizer "
                             f"object or one of {sorted(table)}")
        return table[optimizer.lower()](model.parameters())
    if not (hasattr(optimizer, "step") and hasattr(optimizer, "zero_grad")):
        raise TypeError(f"optimizer must be a neuropil.optim optimizer, "
                        f"got {type(optimizer).__name__}")
    return optimizer


# -- metrics ----------------------------------------------------------------------

def accuracy(pred: np.ndarray, target: np.ndarray) -> float:
    """Share of correct predictions in a batch. ``pred`` (N, C) scores with
    integer labels (N,) or one-hot/probability targets (N, C) compare arg
    maxima; a single output (N,) or (N, 1) is a binary logit (positive means 1).
    Per-position scores (N, C, d1, ...) (segmentation) compare the arg maxima over
    axis 1 with labels (N, d1, ...), counting every position."""
    if pred.ndim > 2 and pred.shape[1] > 1:
        guess = pred.argmax(axis=1)
        truth = target if target.ndim == pred.ndim - 1 else target.argmax(axis=1)
        return float(np.count_nonzero(guess == truth)) / guess.size
    if pred.ndim == 2 and pred.shape[1] > 1:
        guess = F.argmax(pred)  # C++ row argmax: no NumPy arithmetic on the hot path
        if target.ndim == 1:
            truth = target
        elif target.dtype in (np.float32, np.float64):
            truth = F.argmax(target)
        else:
            truth = target.argmax(axis=1)
    else:
        guess = pred.reshape(-1) > 0
        truth = target.reshape(-1) > 0.5
    return float(np.count_nonzero(guess == truth)) / len(guess)


_METRICS = {"accuracy": accuracy, "acc": accuracy}


def _resolve_metrics(fn, metrics, y):
    if metrics is None:
        return []
    if isinstance(metrics, str) or callable(metrics):
        metrics = (metrics,)
    out = []
    default = metrics is _DEFAULT_METRICS
    for m in metrics:
        if callable(m):
            out.append((getattr(m, "__name__", "metric"), m))
            continue
        if m not in _METRICS:
            raise ValueError(f"{fn}: unknown metric {m!r}; use one of {sorted(_METRICS)} "
                             f"or a callable metric(pred, target) -> float")
        if m in ("accuracy", "acc") and y is not None and y.dtype != np.int64:
            if y.size and (y.min() < 0 or y.max() > 1):
                if default:
                    continue  # regression targets: no accuracy unless asked for
                raise ValueError(f"{fn}: metric {m!r} needs class labels or one-hot/"
                                 f"probability targets, but y holds real values from "
                                 f"{float(y.min()):g} to {float(y.max()):g}; pass metrics=()")
        out.append(("accuracy" if m == "acc" else m, _METRICS[m]))
    return out


def _weight(loss, n):
    # the epoch's loss is a per-sample mean: a batch's "mean" loss counts n times,
    # a "sum" loss once
    return n if getattr(loss, "reduction", "mean") == "mean" else 1
