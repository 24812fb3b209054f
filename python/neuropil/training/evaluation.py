"""``evaluate`` and ``predict``: batched, in eval mode, over arrays, memory-mapped
arrays or iterables of batches (read one batch ahead on a background thread)."""
from __future__ import annotations

import sys

import numpy as np

from ..nn.graph import no_grad
from . import data as D
from ._args import (_DEFAULT_METRICS, _check_int, _check_labels, _first_layer_check,
                    _model_dtype, _resolve_loss, _resolve_metrics, _weight)

__all__ = ["evaluate", "predict", "evaluate_sums"]


def _batches(source, batch_size, need_y=True):
    """Iterate ``(xb, yb)`` over a source in order; lazy sources through a Prefetcher."""
    if source.kind == "array":
        n = source.n
        count = -(-n // batch_size)

        def produce(i, slot):
            lo, hi = i * batch_size, min(n, (i + 1) * batch_size)
            return source.gather(None, lo, hi, slot)
        if not source.any_lazy:
            for i in range(count):
                yield produce(i, None)
            return
    else:
        iterator = source.epoch_iterator()
        count = source.steps

        def produce(i, slot):
            item = next(iterator, StopIteration)
            return None if item is StopIteration else source.convert(item, slot, i)
    prefetcher = D.Prefetcher(produce, count)
    try:
        while True:
            item = prefetcher.next() if count is None or count > 0 else None
            if item is None:
                return
            yield item
            if count is not None:
                count -= 1
    finally:
        prefetcher.close()


def evaluate_sums(model, source, loss, metric_fns, batch_size, fn, check_labels=False):
    """``[loss sum, loss weight, samples, metric sums...]`` of ``model`` over ``source``
    (float64), for averaging here or across ranks."""
    was_training = model.training
    model.eval()
    total, weight, count = 0.0, 0, 0
    sums = [0.0] * len(metric_fns)
    with no_grad():  # inference: nothing recorded for a backward
        try:
            for i, (xb, yb) in enumerate(_batches(source, batch_size)):
                pred = model.forward(xb)
                if check_labels and (i == 0 or source.kind != "array" or source.y_lazy):
                    _check_labels(fn, source.y if source.kind == "array" and not source.y_lazy
                                  else yb, pred)
                k = len(xb)
                total += float(loss.forward(pred, yb)) * _weight(loss, k)
                weight += k
                count += k
                for j, (_, mfn) in enumerate(metric_fns):
                    sums[j] += mfn(pred, yb) * k
        finally:
            model.train(was_training)
    return np.array([total, weight, count] + sums, dtype=np.float64)


def evaluate(model, x, y=None, *, loss, batch_size: int = 256, metrics=_DEFAULT_METRICS,
             verbose: int = 0, steps: int | None = None) -> dict:
    """Loss and metrics of ``model`` on ``(x, y)``: ``{"loss": ..., "accuracy": ...}``.

    Runs in eval mode, in batches of ``batch_size``, and restores the model's
    previous mode. The loss is the per-sample mean over all of ``x`` (each
    batch weighted by its size). ``x`` may be a memory-mapped array (read batch by
    batch) or an iterable of ``(x, y)`` batches (``steps`` of them, or until it
    ends). Same argument checks as ``fit``. Runs on this process alone, also
    under MPI.
    """
    fn = "evaluate"
    loss = _resolve_loss(loss)
    batch_size = _check_int(fn, "batch_size", batch_size, 1)
    if steps is not None:
        steps = _check_int(fn, "steps", steps, 1)
    source = D.as_source(fn, x, y, _model_dtype(model), steps=steps)
    if source.kind == "array":
        _first_layer_check(fn, model, source.x)
        metric_fns = _resolve_metrics(fn, metrics, source.y_sample())
    else:
        metric_fns = _resolve_metrics(fn, metrics, None)
    sums = evaluate_sums(model, source, loss, metric_fns, batch_size, fn, check_labels=True)
    if sums[2] == 0:
        raise ValueError(f"{fn}: the iterable of batches yielded no batch")
    out = {"loss": float(sums[0] / sums[1])}
    for (name, _), s in zip(metric_fns, sums[3:]):
        out[name] = float(s / sums[2])
    if verbose:
        print(" - ".join(f"{k}: {v:.4f}" for k, v in out.items()), file=sys.stdout)
    return out


def predict(model, x, batch_size: int = 256, steps: int | None = None) -> np.ndarray:
    """The model's outputs for ``x`` ``(N, ...)``, computed in eval mode in
    batches of ``batch_size`` and written into one preallocated ``(N, ...)``
    array. ``x`` may be memory-mapped (read batch by batch) or an iterable of
    input batches (or of ``(x, y)`` pairs, whose ``y`` is ignored). Restores the
    model's previous mode."""
    fn = "predict"
    batch_size = _check_int(fn, "batch_size", batch_size, 1)
    if steps is not None:
        steps = _check_int(fn, "steps", steps, 1)
    source = D.as_source(fn, x, None, _model_dtype(model), need_y=False, steps=steps)
    if source.kind == "array":
        _first_layer_check(fn, model, source.x)
    was_training = model.training
    model.eval()
    with no_grad():  # inference: nothing recorded for a backward
        try:
            out, parts, lo = None, [], 0
            for xb, _ in _batches(source, batch_size, need_y=False):
                pred = np.asarray(model.forward(xb))
                if source.kind != "array":
                    parts.append(np.array(pred, copy=True))
                    continue
                if out is None:
                    out = np.empty((source.n,) + pred.shape[1:], pred.dtype)
                out[lo:lo + len(xb)] = pred
                lo += len(xb)
        finally:
            model.train(was_training)
    if source.kind != "array":
        if not parts:
            raise ValueError(f"{fn}: the iterable of batches yielded no batch")
        return np.concatenate(parts)
    return out
