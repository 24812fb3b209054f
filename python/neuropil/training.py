"""The Keras-style training loop: ``Module.fit``, ``evaluate`` and ``predict``.

``fit`` is a loop with hooks (STYLE rule 11): for every epoch it draws one
permutation of the training samples from the seeded generator, gathers each
minibatch into reused buffers and runs ``optimizer.zero_grad()``,
``model.forward``, ``loss.forward``, ``model.backward_params(loss.backward())``
(``backward`` without the input gradient) and ``optimizer.step()``; callbacks see ``on_train_begin / on_epoch_begin /
on_batch_begin / on_batch_end / on_epoch_end / on_train_end``. Nothing here
touches the compiled kernels: the arithmetic is in the layers, the loss and
the optimizer.

The model works with the loss protocol ``loss.forward(pred, target) ->
float`` and ``loss.backward() -> grad_pred``, so any Module and any loss
following it can be trained.
"""
from __future__ import annotations

import math
import numbers
import sys

import numpy as np

from . import _random
from . import functional as F
from . import nn, optim
from .callbacks import Callback, CallbackList, History, ProgressBar

__all__ = ["fit", "evaluate", "predict", "DivergenceError"]

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
                 "binary_crossentropy": "BCEWithLogitsLoss"}
        cls = getattr(nn, names.get(loss, ""), None)
        if cls is None:
            raise ValueError(f"loss={loss!r} is not a known loss name; pass a loss object "
                             f"(e.g. nn.CrossEntropyLoss()) or one of {sorted(names)}")
        return cls()
    if loss is None or not (hasattr(loss, "forward") and hasattr(loss, "backward")):
        raise TypeError(f"loss must be a loss object with forward(pred, target) and "
                        f"backward(), got {type(loss).__name__}")
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
    maxima; a single output (N,) or (N, 1) is a binary logit (positive means 1)."""
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


# -- the loops ----------------------------------------------------------------------

def fit(model, x, y=None, *, loss, optimizer, epochs: int = 1, batch_size: int = 32,
        shuffle: bool = True, validation_data=None, validation_split: float = 0.0,
        callbacks=(), metrics=_DEFAULT_METRICS, verbose: int = 1, rng=None,
        initial_epoch: int = 0) -> History:
    """Train ``model`` on ``(x, y)`` by minibatch gradient descent (Keras's ``fit``).

    x: ``(N, ...)`` inputs, converted once to the model's dtype.
    y: ``(N,)`` integer labels or ``(N, ...)`` float targets, as ``loss`` wants.
    loss: a loss object (``nn.CrossEntropyLoss()``, ...) or a name ("mse",
    "cross_entropy", "bce_with_logits"). optimizer: a ``neuropil.optim``
    optimizer over the model's parameters (or "sgd"/"adam" with defaults).
    Each epoch is one pass over the data in minibatches of ``batch_size``
    drawn without replacement (one permutation per epoch from ``rng``, or
    from ``neuropil.manual_seed``'s generator; ``shuffle=False`` keeps the
    order). ``validation_split`` holds out the *last* fraction of the samples
    (before shuffling, as Keras); ``validation_data=(x_val, y_val)`` takes
    precedence. Epoch logs hold ``loss`` and ``metrics`` (default accuracy,
    for classification targets) over the training batches and ``val_*``
    evaluated after the epoch in eval mode. ``callbacks`` get Keras's hooks;
    ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch.

    Returns the :class:`History`. Raises ``ValueError`` naming the argument
    for mismatched lengths, empty data, wrong feature counts and labels out
    of range, and :class:`DivergenceError` (a FloatingPointError and a
    ValueError) naming the epoch and batch when the loss becomes NaN or inf.
    Same seed, same data: bitwise the same weights and history, whatever the
    thread count.
    """
    fn = "fit"
    loss = _resolve_loss(loss)
    optimizer = _resolve_optimizer(optimizer, model)
    epochs = _check_int(fn, "epochs", epochs, 0)
    initial_epoch = _check_int(fn, "initial_epoch", initial_epoch, 0)
    batch_size = _check_int(fn, "batch_size", batch_size, 1)
    verbose = _check_int(fn, "verbose", verbose, 0)
    if not isinstance(validation_split, numbers.Real) or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"{fn}: validation_split must be in [0, 1), got {validation_split!r}")
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"{fn}: callbacks[{i}] must be a neuropil.callbacks.Callback, "
                            f"got {type(cb).__name__}")
    gen = _random.get_rng(rng)
    dtype = _model_dtype(model)

    x = _as_inputs(fn, x, dtype)
    y = _as_targets(fn, y, x.shape[0], dtype)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(f"{fn}: validation_data must be a pair (x_val, y_val)")
        x_val = _as_inputs(fn, validation_data[0], dtype, "validation_data[0]")
        y_val = _as_targets(fn, validation_data[1], x_val.shape[0], dtype, "validation_data[1]")
    elif validation_split > 0:
        split = int(x.shape[0] * (1.0 - validation_split))
        if split <= 0 or split >= x.shape[0]:
            raise ValueError(f"{fn}: validation_split={validation_split} of {x.shape[0]} "
                             f"samples leaves an empty training or validation set")
        x, x_val = x[:split], x[split:]
        y, y_val = y[:split], y[split:]
    else:
        x_val = y_val = None
    _first_layer_check(fn, model, x)
    metric_fns = _resolve_metrics(fn, metrics, y)

    n = x.shape[0]
    steps = -(-n // batch_size)
    history = History()
    cbs = list(callbacks) + [history]
    if verbose:
        cbs.append(ProgressBar(verbose))
    params = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "samples": n,
              "verbose": verbose, "metrics": [m for m, _ in metric_fns]}
    cblist = CallbackList(cbs, model, optimizer, params)
    batch_logs = cblist.wants_batch_logs

    # reused minibatch buffers (a full one and, if needed, the short last one)
    full = n // batch_size
    rest = n - full * batch_size
    xbuf = [np.empty((batch_size,) + x.shape[1:], dtype)] if shuffle and full else []
    ybuf = [np.empty((batch_size,) + y.shape[1:], y.dtype)] if shuffle and full else []
    if shuffle and rest:
        xbuf.append(np.empty((rest,) + x.shape[1:], dtype))
        ybuf.append(np.empty((rest,) + y.shape[1:], y.dtype))

    # the model input's own gradient is never needed here; layers may skip it
    backward = getattr(model, "backward_params", model.backward)
    model.stop_training = False
    model.train()
    labels_checked = False
    cblist.on_train_begin({})
    try:
        for epoch in range(initial_epoch, epochs):
            if model.stop_training:
                break
            cblist.on_epoch_begin(epoch, {})
            order = gen.permutation(n) if shuffle else None
            total_loss = 0.0
            total_weight = 0
            metric_sums = [0.0] * len(metric_fns)
            for b in range(steps):
                lo, hi = b * batch_size, min(n, (b + 1) * batch_size)
                if shuffle:
                    idx = order[lo:hi]
                    k = 0 if hi - lo == batch_size else len(xbuf) - 1
                    xb = np.take(x, idx, axis=0, out=xbuf[k], mode="clip")
                    yb = np.take(y, idx, axis=0, out=ybuf[k], mode="clip")
                else:
                    xb, yb = x[lo:hi], y[lo:hi]
                if batch_logs:
                    cblist.on_batch_begin(b, {"batch": b, "size": hi - lo})
                optimizer.zero_grad()
                pred = model.forward(xb)
                if not labels_checked:
                    _check_labels(fn, y, pred)
                    if y_val is not None:
                        _check_labels(fn, y_val, pred, "validation labels")
                    labels_checked = True
                value = float(loss.forward(pred, yb))
                if not math.isfinite(value):
                    raise DivergenceError(
                        f"{fn}: the loss became {value} at epoch {epoch + 1}, batch {b + 1} of "
                        f"{steps}: training diverged (try a lower learning rate, or check the "
                        f"data for extreme values)")
                backward(loss.backward())
                optimizer.step()
                total_loss += value * _weight(loss, hi - lo)
                total_weight += hi - lo
                for i, (_, mfn) in enumerate(metric_fns):
                    metric_sums[i] += mfn(pred, yb) * (hi - lo)
                if batch_logs:
                    cblist.on_batch_end(b, {"batch": b, "size": hi - lo,
                                            "loss": total_loss / total_weight})
                if model.stop_training:
                    break
            seen = min(n, (b + 1) * batch_size)
            logs = {"loss": total_loss / total_weight}
            for (name, _), s in zip(metric_fns, metric_sums):
                logs[name] = s / seen
            if x_val is not None:
                val = evaluate(model, x_val, y_val, loss=loss, batch_size=max(batch_size, 256),
                               metrics=[f for _, f in metric_fns], _checked=True)
                model.train()
                for k, v in val.items():
                    logs["val_" + k] = v
            cblist.on_epoch_end(epoch, logs)
    except BaseException:
        for cb in cbs:  # close progress bars and log files before the error propagates
            abort = getattr(cb, "_abort", None)
            if abort is not None:
                abort()
        raise
    cblist.on_train_end({})
    return history


def _batches(n, batch_size):
    for lo in range(0, n, batch_size):
        yield lo, min(n, lo + batch_size)


def evaluate(model, x, y=None, *, loss, batch_size: int = 256, metrics=_DEFAULT_METRICS,
             verbose: int = 0, _checked: bool = False) -> dict:
    """Loss and metrics of ``model`` on ``(x, y)``: ``{"loss": ..., "accuracy": ...}``.

    Runs in eval mode, in batches of ``batch_size``, and restores the model's
    previous mode. The loss is the per-sample mean over all of ``x`` (each
    batch weighted by its size). Same argument checks as ``fit``.
    """
    fn = "evaluate"
    loss = _resolve_loss(loss)
    batch_size = _check_int(fn, "batch_size", batch_size, 1)
    dtype = _model_dtype(model)
    if not _checked:
        x = _as_inputs(fn, x, dtype)
        y = _as_targets(fn, y, x.shape[0], dtype)
        _first_layer_check(fn, model, x)
    metric_fns = _resolve_metrics(fn, metrics, y)
    was_training = model.training
    model.eval()
    try:
        total = 0.0
        weight = 0
        sums = [0.0] * len(metric_fns)
        for lo, hi in _batches(x.shape[0], batch_size):
            pred = model.forward(x[lo:hi])
            if lo == 0 and not _checked:
                _check_labels(fn, y, pred)
            value = float(loss.forward(pred, y[lo:hi]))
            total += value * _weight(loss, hi - lo)
            weight += hi - lo
            for i, (_, mfn) in enumerate(metric_fns):
                sums[i] += mfn(pred, y[lo:hi]) * (hi - lo)
    finally:
        model.train(was_training)
    out = {"loss": total / weight}
    for (name, _), s in zip(metric_fns, sums):
        out[name] = s / x.shape[0]
    if verbose:
        print(" - ".join(f"{k}: {v:.4f}" for k, v in out.items()), file=sys.stdout)
    return out


def predict(model, x, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for ``x`` ``(N, ...)``, computed in eval mode in
    batches of ``batch_size`` and written into one preallocated ``(N, ...)``
    array. Restores the model's previous mode."""
    fn = "predict"
    batch_size = _check_int(fn, "batch_size", batch_size, 1)
    x = _as_inputs(fn, x, _model_dtype(model))
    _first_layer_check(fn, model, x)
    was_training = model.training
    model.eval()
    try:
        out = None
        for lo, hi in _batches(x.shape[0], batch_size):
            pred = np.asarray(model.forward(x[lo:hi]))
            if out is None:
                out = np.empty((x.shape[0],) + pred.shape[1:], pred.dtype)
            out[lo:hi] = pred
    finally:
        model.train(was_training)
    return out


nn.module.register_loops(fit=fit, evaluate=evaluate, predict=predict)
