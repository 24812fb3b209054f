"""``fit``: the Keras-style training loop, on one process or data-parallel over MPI.

``fit`` is a loop with hooks (STYLE rule 11): for every epoch it draws one
permutation of the training samples from the seeded generator, gathers each
minibatch into reused buffers and runs ``optimizer.zero_grad()``,
``model.forward``, ``loss.forward``, ``model.backward_params(loss.backward())``
(``backward`` without the input gradient) and ``optimizer.step()``; callbacks see
``on_train_begin / on_epoch_begin / on_batch_begin / on_batch_end / on_epoch_end /
on_train_end``. Nothing here touches the compiled kernels.

Data-parallel (after ``neuropil.distributed.init()`` in a world of R > 1 ranks, or
when an MPI launcher started the process): the epoch's permutation is split between
the ranks (:class:`~neuropil.training.data.EpochPlan`), ``batch_size`` is per rank,
the gradients are summed across ranks in buckets between backward and the
optimizer step (weighted by each rank's batch size, so a step of R ranks equals one
step of one process with batch R*b), the epoch's loss, metrics and validation
results are reduced over ranks, and only rank 0 prints and writes files. Every rank
sees the same logs, so every callback decides the same way. An exception on one rank
inside the loop prints its traceback and aborts the whole job.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import warnings

import numpy as np

from .. import _random
from .. import distributed as dist
from ..callbacks import Callback, CallbackList, History, ProgressBar
from ..checkpoint import BackupAndRestore, load_checkpoint, save_checkpoint
from . import data as D
from ._args import (_DEFAULT_METRICS, DivergenceError, _check_int, _check_labels,
                    _first_layer_check, _model_dtype, _resolve_loss, _resolve_metrics,
                    _resolve_optimizer, _weight)
from .evaluation import evaluate_sums
from .interrupt import InterruptGuard

__all__ = ["fit"]

# values that travel with the gradients each step (summed over ranks)
_WEIGHT, _HAS_DATA, _INTERRUPT, _NONFINITE, _EXTRAS = 0, 1, 2, 3, 4


def _rng_state(gen):
    return gen.bit_generator.state


def _set_rng_state(gen, state):
    gen.bit_generator.state = state


class Trainer:
    """One call of ``fit``: its arguments, data, progress and the distributed world."""

    def __init__(self, model, x, y, *, loss, optimizer, epochs, batch_size, shuffle,
                 validation_data, validation_split, callbacks, metrics, verbose, rng,
                 initial_epoch, steps_per_epoch, resume_from, bucket_bytes):
        fn = "fit"
        self.model = model
        self.loss = _resolve_loss(loss)
        self.optimizer = _resolve_optimizer(optimizer, model)
        self.epochs = _check_int(fn, "epochs", epochs, 0)
        self.initial_epoch = _check_int(fn, "initial_epoch", initial_epoch, 0)
        self.batch_size = _check_int(fn, "batch_size", batch_size, 1)
        self.verbose = _check_int(fn, "verbose", verbose, 0)
        self.shuffle = bool(shuffle)
        if steps_per_epoch is not None:
            steps_per_epoch = _check_int(fn, "steps_per_epoch", steps_per_epoch, 1)
        if not isinstance(validation_split, numbers.Real) or \
                not 0.0 <= validation_split < 1.0:
            raise ValueError(f"{fn}: validation_split must be in [0, 1), "
                             f"got {validation_split!r}")
        if isinstance(callbacks, Callback):
            callbacks = [callbacks]
        callbacks = list(callbacks)
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(f"{fn}: callbacks[{i}] must be a neuropil.callbacks.Callback, "
                                f"got {type(cb).__name__}")
        self.user_callbacks = callbacks
        self.gen = _random.get_rng(rng)
        self.separate_gen = self.gen is not _random.get_rng(None)
        dtype = _model_dtype(model)

        # the world: an MPI launcher's job joins it implicitly, so scripts run unchanged
        if not dist.is_initialized():
            dist.init()
        self.world, self.rank = dist.world_size(), dist.rank()
        self.distributed = self.world > 1

        self.data = D.as_source(fn, x, y, dtype, steps=steps_per_epoch)
        self.val = None
        if validation_data is not None:
            pair = isinstance(validation_data, (tuple, list)) and len(validation_data) == 2
            arrays = isinstance(validation_data, (tuple, list, np.ndarray)) or \
                D.is_lazy(validation_data)
            if pair:
                self.val = D.ArrayData(fn, validation_data[0], validation_data[1], dtype,
                                       names=("validation_data[0]", "validation_data[1]"))
            elif arrays:
                raise ValueError(f"{fn}: validation_data must be a pair (x_val, y_val) "
                                 f"or an iterable of (x, y) batches")
            else:  # an iterable of batches, evaluated whole after every epoch
                self.val = D.IterableData(fn, validation_data, dtype)
        elif validation_split > 0:
            if self.data.kind != "array":
                raise ValueError(f"{fn}: validation_split needs arrays; with an iterable of "
                                 f"batches pass validation_data")
            n = self.data.n
            split = int(n * (1.0 - validation_split))
            if split <= 0 or split >= n:
                raise ValueError(f"{fn}: validation_split={validation_split} of {n} "
                                 f"samples leaves an empty training or validation set")
            self.data, self.val = self.data.split(split)
        if self.data.kind == "array":
            _first_layer_check(fn, model, self.data.x)
            self.metric_fns = _resolve_metrics(fn, metrics, self.data.y_sample())
            self.plan = D.EpochPlan(self.data.n, self.batch_size, self.world, self.rank)
            self.steps = self.plan.steps
            if steps_per_epoch is not None:
                raise ValueError(f"{fn}: steps_per_epoch applies to an iterable of batches; "
                                 f"with arrays an epoch is one pass over them")
        else:
            self.metric_fns = _resolve_metrics(fn, metrics, None)
            self.plan = None
            self.steps = steps_per_epoch
        self.val_shard = None
        if self.val is not None and self.val.kind == "array":
            self.val_shard = self.val.shard(self.rank, self.world) if self.distributed \
                else self.val
        self.bucket_bytes = bucket_bytes
        self.resume_from = resume_from
        self.backups = [cb for cb in callbacks if isinstance(cb, BackupAndRestore)]
        # the model input's own gradient is never needed here; layers may skip it
        self.backward = getattr(model, "backward_params", model.backward)
        self.labels_checked = False
        self.epoch = self.initial_epoch
        self.batch = 0
        self.epoch_rng_state = None
        self._reset_sums()

    # -- running sums of an epoch (local to this rank) ------------------------------
    def _reset_sums(self):
        self.total_loss = 0.0
        self.total_weight = 0
        self.metric_sums = [0.0] * len(self.metric_fns)
        self.seen = 0

    # -- checkpoints ----------------------------------------------------------------------
    def _rank_state(self):
        return {"total_loss": self.total_loss, "total_weight": self.total_weight,
                "metric_sums": list(self.metric_sums), "seen": self.seen,
                "global_rng": _rng_state(_random.get_rng(None)),
                "labels_checked": self.labels_checked}

    def training_state(self) -> dict:
        """Everything needed to continue this fit exactly from here (collective under
        MPI: every rank contributes its running sums and generator state)."""
        ranks = dist.allgather_object(self._rank_state()) if self.distributed \
            else [self._rank_state()]
        return {
            "epoch": self.epoch, "batch": self.batch, "epochs": self.epochs,
            "world_size": self.world, "batch_size": self.batch_size,
            "samples": self.data.n, "shuffle": self.shuffle,
            "stop_training": bool(getattr(self.model, "stop_training", False)),
            "epoch_rng_state": self.epoch_rng_state,
            "fit_rng": _rng_state(self.gen) if self.separate_gen else None,
            "ranks": ranks,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "callbacks": [{"class": key, "state": cb.state_dict()}
                          for key, cb in self._callback_keys()],
        }

    def _callback_keys(self):
        """``("EarlyStopping#0", cb)`` for each callback: a checkpoint's callback states
        are matched by class name and occurrence, so adding or removing a stateless
        callback between the runs does not matter."""
        counts: dict = {}
        out = []
        for cb in self.user_callbacks + [self.history]:
            name = type(cb).__name__
            out.append((f"{name}#{counts.get(name, 0)}", cb))
            counts[name] = counts.get(name, 0) + 1
        return out

    def write_checkpoint(self, path) -> None:
        state = self.training_state()
        if self.rank == 0:
            save_checkpoint(path, state)

    def _restore(self, path) -> None:
        state = load_checkpoint(path) if self.rank == 0 else None
        state = dist.broadcast_object(state)
        fn = "fit(resume)"
        mid_epoch = state["batch"] > 0
        for key, mine in (("batch_size", self.batch_size), ("samples", self.data.n),
                          ("shuffle", self.shuffle)):
            if mid_epoch and state[key] != mine:
                raise ValueError(f"{fn}: the checkpoint {path!r} was taken mid-epoch with "
                                 f"{key}={state[key]!r}, this fit has {mine!r}; resume with "
                                 f"the same data and arguments")
        if mid_epoch and state["world_size"] != self.world:
            raise ValueError(f"{fn}: the checkpoint {path!r} was taken mid-epoch by "
                             f"{state['world_size']} rank(s), this job has {self.world}; "
                             f"resume with as many ranks (or from an epoch-end checkpoint)")
        saved_cbs = {c["class"]: c["state"] for c in state["callbacks"]}
        mine = self._callback_keys()
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict({"state": state["optimizer"]["state"],
                                        "param_groups": state["optimizer"]["param_groups"]})
        for key, cb in mine:  # callbacks matched by class and occurrence
            if key in saved_cbs:
                cb.load_state_dict(saved_cbs[key])
        self.model.stop_training = state["stop_training"]
        self.epoch, self.batch = state["epoch"], state["batch"]
        self.epoch_rng_state = state["epoch_rng_state"]
        ranks = state["ranks"]
        mine_rank = ranks[self.rank] if len(ranks) == self.world else ranks[0]
        self.total_loss = mine_rank["total_loss"]
        self.total_weight = mine_rank["total_weight"]
        self.metric_sums = list(mine_rank["metric_sums"])
        self.seen = mine_rank["seen"]
        self.labels_checked = mine_rank["labels_checked"]
        _set_rng_state(_random.get_rng(None), mine_rank["global_rng"])
        if self.separate_gen:
            _set_rng_state(self.gen, state["fit_rng"])
        self.resumed_mid_epoch = mid_epoch

    # -- the run ----------------------------------------------------------------------
    def run(self) -> History:
        model = self.model
        self.history = History()
        verbose = self.verbose if self.rank == 0 else 0
        cbs = self.user_callbacks + [self.history]
        if verbose:
            cbs.append(ProgressBar(verbose))
        self.params = {"epochs": self.epochs, "steps": self.steps,
                       "batch_size": self.batch_size,
                       "samples": self.data.n, "verbose": verbose,
                       "metrics": [m for m, _ in self.metric_fns],
                       "rank": self.rank, "world_size": self.world}
        self.cblist = CallbackList(cbs, model, self.optimizer, self.params)
        self.batch_logs = self.cblist.wants_batch_logs
        # batch hooks of the user's callbacks may set stop_training: agree on it
        self.agree_batch_stop = self.distributed and any(
            type(cb).on_batch_end is not Callback.on_batch_end or
            type(cb).on_batch_begin is not Callback.on_batch_begin
            for cb in self.user_callbacks)
        self.reducer = None
        if self.distributed:
            dist.broadcast_parameters(model)
            dist.broadcast_optimizer_state(self.optimizer)
            if not self.separate_gen or self.shuffle:
                state = dist.broadcast_object(_rng_state(self.gen))
                _set_rng_state(self.gen, state)
            self.reducer = dist.reducer_for(model, self.bucket_bytes, _EXTRAS)
        path = self.resume_from
        if path is None:
            for b in self.backups:
                path = b.resume_path() or path
        self.resumed_mid_epoch = False
        if path is not None:
            self._restore(path)
        model.stop_training = getattr(model, "stop_training", False) if path else False
        model.train()
        interrupted = False
        hooks = dist.gradient_ready_hooks(model, self.reducer) if self.distributed and \
            dist.overlap_requested() else contextlib.nullcontext(None)
        with InterruptGuard(announce=self.rank == 0) as guard, hooks as reset_hooks:
            self.guard = guard
            self.reset_hooks = reset_hooks
            try:
                self.cblist.on_train_begin({})
                while self.epoch < self.epochs and not model.stop_training:
                    if not self._run_epoch():
                        interrupted = True
                        break
            except BaseException as exc:
                if self.distributed and not getattr(exc, "_all_ranks", False):
                    dist.report_and_abort(exc)
                for cb in cbs:  # close progress bars and log files before it propagates
                    abort = getattr(cb, "_abort", None)
                    if abort is not None:
                        abort()
                raise
            for b in self.backups:
                b.after_train(self, interrupted)
            self.cblist.on_train_end({"interrupted": True} if interrupted else {})
        self.history.interrupted = interrupted
        return self.history

    def _epoch_order(self):
        if self.batch == 0 or self.epoch_rng_state is None:
            self.epoch_rng_state = _rng_state(self.gen)
            return self.gen.permutation(self.data.n) if self.shuffle and \
                self.data.kind == "array" else None
        # resuming mid-epoch: redraw this epoch's permutation, then continue the
        # generators from where the checkpoint left them
        if not (self.shuffle and self.data.kind == "array"):
            return None
        now = _rng_state(self.gen)
        _set_rng_state(self.gen, self.epoch_rng_state)
        order = self.gen.permutation(self.data.n)
        _set_rng_state(self.gen, now)
        return order

    def _run_epoch(self) -> bool:
        """One epoch (or its remainder); False when interrupted by Ctrl-C."""
        epoch = self.epoch
        if not self.resumed_mid_epoch:
            self._reset_sums()
            self.batch = 0
        self.resumed_mid_epoch = False
        self.cblist.on_epoch_begin(epoch, {})
        order = self._epoch_order()
        stopped = self._run_batches(order)
        if stopped == "interrupt":
            return False
        if stopped == "empty":
            return True
        logs = self._epoch_logs()
        self.cblist.on_epoch_end(epoch, logs)
        self.epoch = epoch + 1
        self.batch = 0
        self._reset_sums()
        self.epoch_rng_state = None
        for b in self.backups:
            b.after_epoch(self, epoch)
        return True

    def _batch_source(self, order):
        """(count or None, produce(i, slot) -> (xb, yb, sizes) or None, prefetch?)"""
        data, first = self.data, self.batch
        if data.kind == "array":
            plan = self.plan

            def produce(i, slot):
                k = first + i
                lo, hi = plan.bounds(k)
                sizes = plan.sizes(k)
                if hi == lo:
                    return None, None, sizes
                idx = None if order is None else order[lo:hi]
                xb, yb = data.gather(idx, lo, hi, slot)
                return xb, yb, sizes
            return plan.steps - first, produce, data.any_lazy
        iterator = data.epoch_iterator()
        if first:  # resuming mid-epoch in a re-iterable source: skip what was done
            for _ in range(first):
                next(iterator, None)
        limit = None if self.steps is None else self.steps - first

        def produce_iter(i, slot):
            item = next(iterator, StopIteration)
            if item is StopIteration:
                return None
            xb, yb = data.convert(item, slot, first + i)
            return xb, yb, None
        return limit, produce_iter, True

    def _run_batches(self, order):
        count, produce, prefetch = self._batch_source(order)
        if prefetch:
            source = D.Prefetcher(produce, count)
            get = source.next
        else:
            source = None
            slot = {}
            counter = iter(range(count))

            def get():
                i = next(counter, None)
                return None if i is None else produce(i, slot)
        try:
            while True:
                if self.plan is not None and self.batch >= self.plan.steps:
                    return None
                if self.plan is None and self.steps is not None and self.batch >= self.steps:
                    return None
                result = self._step(get())
                if result is not None:
                    return result
        finally:
            if source is not None:
                source.close()

    def _step(self, item):
        """One training step on this rank's batch ``item``; returns a reason to stop
        the epoch ("end", "stop", "interrupt") or None."""
        fn, model, loss = "fit", self.model, self.loss
        xb, yb, sizes = (None, None, None) if item is None else item
        has_data = xb is not None
        if not has_data and not self.distributed:
            return self._out_of_data()
        b = self.batch
        size = len(xb) if has_data else 0
        if self.batch_logs:
            self.cblist.on_batch_begin(b, {"batch": b, "size": size})
        self.optimizer.zero_grad()
        if self.distributed:  # before backward: buckets may start during it
            self._start_reduce(size, sizes)
        value = 0.0
        pred = None
        if has_data:
            pred = model.forward(xb)
            if not self.labels_checked or self.data.kind != "array" or self.data.y_lazy:
                self._check_batch_labels(fn, yb, pred)
            value = float(loss.forward(pred, yb))
            finite = math.isfinite(value)
            if not finite and not self.distributed:
                raise DivergenceError(
                    f"{fn}: the loss became {value} at epoch {self.epoch + 1}, batch {b + 1}"
                    f"{'' if self.steps is None else f' of {self.steps}'}: training diverged "
                    f"(try a lower learning rate, or check the data for extreme values)")
            self.backward(loss.backward())
        else:
            finite = True
        if self.distributed:
            if not self._reduce(size, sizes, has_data, finite, value, b):
                return self._out_of_data()
        self.optimizer.step()
        if has_data:
            self.total_loss += value * _weight(loss, size)
            self.total_weight += size
            for i, (_, mfn) in enumerate(self.metric_fns):
                self.metric_sums[i] += mfn(pred, yb) * size
            self.seen += size
        self.batch = b + 1
        if self.batch_logs:
            self.cblist.on_batch_end(b, {"batch": b, "size": size,
                                         "loss": self.total_loss / max(self.total_weight, 1)})
        if self.agree_batch_stop:
            flag = np.array([1.0 if model.stop_training else 0.0])
            model.stop_training = bool(dist.allreduce(flag, "max")[0])
        for bk in self.backups:
            bk.after_batch(self, b)
        if self.guard.requested and not self.distributed:
            return "interrupt"
        if getattr(self, "_interrupt_all", False):
            return "interrupt"
        if model.stop_training:
            return "stop"
        return None

    def _out_of_data(self):
        """The iterable ended (on every rank). At an epoch's start: stop training."""
        if self.batch > 0:
            return "end"
        warnings.warn(f"fit: the iterable of batches ran out of data at the start of epoch "
                      f"{self.epoch + 1}; stopping (pass a re-iterable source, or "
                      f"steps_per_epoch)", RuntimeWarning, stacklevel=5)
        self.model.stop_training = True
        return "empty"

    def _start_reduce(self, size, sizes):
        """Each rank's gradient is pre-scaled by its batch size when sizes differ (then
        divided by the total): the sum over ranks is the gradient of the mean loss
        over all of the step's samples, as one process with the whole batch gets."""
        mean = getattr(self.loss, "reduction", "mean") == "mean"
        if sizes is not None:  # array data: every rank's size is known in advance
            uniform = len(set(sizes)) == 1
            pre = 1.0 if (uniform or not mean) else float(size)
        else:
            pre = float(size) if mean else 1.0
        self._pre, self._mean = pre, mean
        if self.reset_hooks is not None:
            self.reset_hooks()
        self.reducer.start(pre)

    def _reduce(self, size, sizes, has_data, finite, value, b) -> bool:
        """Finish the step's all-reduce; False when no rank had data (the iterable is
        exhausted everywhere)."""
        pre, mean, r = self._pre, self._mean, self.reducer
        extras = np.zeros(_EXTRAS)
        extras[_WEIGHT] = pre if mean else 1.0
        extras[_HAS_DATA] = 1.0 if has_data else 0.0
        extras[_INTERRUPT] = 1.0 if self.guard.requested else 0.0
        extras[_NONFINITE] = 0.0 if finite else 1.0
        total = r.finish(extras)
        if total[_HAS_DATA] == 0:
            return False
        if total[_NONFINITE] > 0:
            err = DivergenceError(
                f"fit: the loss became non-finite on {int(total[_NONFINITE])} of "
                f"{self.world} ranks at epoch {self.epoch + 1}, batch {b + 1}"
                f"{'' if self.steps is None else f' of {self.steps}'} (this rank's loss: "
                f"{value}): training diverged (try a lower learning rate, or check the "
                f"data for extreme values)")
            err._all_ranks = True
            raise err
        if mean:
            r.scale(1.0 / total[_WEIGHT])
        if total[_INTERRUPT] > 0:
            self._interrupt_all = True
        return True

    def _check_batch_labels(self, fn, yb, pred):
        if self.data.kind == "array" and not self.data.y_lazy:
            _check_labels(fn, self.data.y, pred)
            if self.val is not None and self.val.kind == "array" and not self.val.y_lazy:
                _check_labels(fn, self.val.y, pred, "validation labels")
        else:
            _check_labels(fn, yb, pred)
        self.labels_checked = True

    def _epoch_logs(self) -> dict:
        sums = np.array([self.total_loss, self.total_weight, self.seen] + self.metric_sums,
                        dtype=np.float64)
        if self.distributed:
            dist.allreduce(sums, "sum")
        logs = {"loss": float(sums[0] / max(sums[1], 1))}
        for (name, _), s in zip(self.metric_fns, sums[3:]):
            logs[name] = float(s / max(sums[2], 1))
        if self.val is not None:
            val = self.val_shard if self.val_shard is not None else self.val
            vsums = evaluate_sums(self.model, val, self.loss, self.metric_fns,
                                  max(self.batch_size, 256), "fit")
            self.model.train()
            if self.distributed:
                dist.allreduce(vsums, "sum")
            logs["val_loss"] = float(vsums[0] / max(vsums[1], 1))
            for (name, _), s in zip(self.metric_fns, vsums[3:]):
                logs["val_" + name] = float(s / max(vsums[2], 1))
        if self.distributed:  # buffers (running statistics) follow rank 0's
            if any(True for _ in self.model.named_buffers()):
                dist.broadcast_parameters(self.model)
        return logs


def fit(model, x, y=None, *, loss, optimizer, epochs: int = 1, batch_size: int = 32,
        shuffle: bool = True, validation_data=None, validation_split: float = 0.0,
        callbacks=(), metrics=_DEFAULT_METRICS, verbose: int = 1, rng=None,
        initial_epoch: int = 0, steps_per_epoch: int | None = None, resume_from=None,
        bucket_bytes: int = dist.DEFAULT_BUCKET_BYTES) -> History:
    """Train ``model`` on ``(x, y)`` by minibatch gradient descent (Keras's ``fit``).

    x: ``(N, ...)`` inputs, converted once to the model's dtype; a memory-mapped
    array (``np.load(path, mmap_mode="r")``) is read batch by batch instead, never
    whole; or an iterable of ``(x, y)`` batches (then ``y`` is None; a re-iterable
    source is iterated once per epoch, a generator needs ``steps_per_epoch``
    batches per epoch or ends training when it runs out). Lazy sources are read one
    batch ahead on a background thread.
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

    ``resume_from``: a checkpoint written by
    :class:`neuropil.checkpoint.BackupAndRestore`; training continues at its epoch
    and batch with its weights, optimizer, callbacks and generator states, and ends
    bitwise where the uninterrupted run would have. Ctrl-C stops after the current
    batch (end hooks run, ``history.interrupted`` is True); a second Ctrl-C stops
    at once. Under MPI (see ``neuropil.distributed``), ``batch_size`` is per rank.

    Returns the :class:`History`. Raises ``ValueError`` naming the argument
    for mismatched lengths, empty data, wrong feature counts and labels out
    of range, and :class:`DivergenceError` (a FloatingPointError and a
    ValueError) naming the epoch and batch when the loss becomes NaN or inf.
    Same seed, same data: bitwise the same weights and history, whatever the
    thread count.
    """
    trainer = Trainer(model, x, y, loss=loss, optimizer=optimizer, epochs=epochs,
                      batch_size=batch_size, shuffle=shuffle, validation_data=validation_data,
                      validation_split=validation_split, callbacks=callbacks, metrics=metrics,
                      verbose=verbose, rng=rng, initial_epoch=initial_epoch,
                      steps_per_epoch=steps_per_epoch, resume_from=resume_from,
                      bucket_bytes=bucket_bytes)
    return trainer.run()

