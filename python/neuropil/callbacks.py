"""Callbacks for ``Module.fit``, with Keras's hooks and semantics.

``fit`` calls, in order: ``on_train_begin(logs)``, then per epoch
``on_epoch_begin(epoch, logs)``, per batch ``on_batch_begin(batch, logs)`` /
``on_batch_end(batch, logs)`` and ``on_epoch_end(epoch, logs)``, finally
``on_train_end(logs)``. ``epoch`` and ``batch`` count from 0. Epoch logs hold
``loss`` and the metrics on the training batches and, with validation data,
the same names prefixed ``val_``. A callback sees the model as ``self.model``
and the optimizer as ``self.optimizer``; setting ``self.model.stop_training =
True`` ends training after the current batch.

Checkpoints (``neuropil.checkpoint.BackupAndRestore``) save each callback's
``state_dict()`` and, on resume, hand it to ``load_state_dict`` *before*
``on_train_begin``, which then keeps the restored state instead of resetting it.
Under MPI every rank runs every callback with the same logs (so they decide the
same way); only rank 0 prints or writes files.
"""
from __future__ import annotations

import csv
import math
import os
import sys
import time
import warnings

import numpy as np

from . import distributed as dist
from .optim.lr_scheduler import ReduceLROnPlateau

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint",
           "CSVLogger", "LRScheduler", "LearningRateScheduler", "ProgressBar"]


class Callback:
    """Base class: every hook does nothing."""

    def __init__(self):
        self.model = None
        self.optimizer = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def state_dict(self) -> dict:
        """What a checkpoint must hold to resume this callback exactly (override in
        callbacks that keep state across epochs; values: numbers, strings, lists,
        dicts and numpy arrays)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``'s result; called before ``on_train_begin``."""

    def _take_resumed(self) -> bool:
        """True once after ``load_state_dict`` (on_train_begin then keeps the state)."""
        resumed = self.__dict__.pop("_resumed", False)
        return resumed

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass


class CallbackList:
    """Calls each hook on every callback, in the order given."""

    def __init__(self, callbacks, model, optimizer, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.optimizer = optimizer
            cb.set_params(params)
        # only callbacks that override a batch hook are called per batch
        self._batch_begin = [cb for cb in self.callbacks
                             if type(cb).on_batch_begin is not Callback.on_batch_begin]
        self._batch_end = [cb for cb in self.callbacks
                           if type(cb).on_batch_end is not Callback.on_batch_end]

    @property
    def wants_batch_logs(self) -> bool:
        return bool(self._batch_begin or self._batch_end)

    def on_train_begin(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_batch_begin(self, batch, logs=None):
        for cb in self._batch_begin:
            cb.on_batch_begin(batch, logs)

    def on_batch_end(self, batch, logs=None):
        for cb in self._batch_end:
            cb.on_batch_end(batch, logs)


class History(Callback):
    """Records the epoch logs: ``history.history["val_loss"][e]`` is epoch ``e``'s.

    ``fit`` returns it; ``epoch`` lists the epoch indices recorded.
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        if self._take_resumed():
            return
        self.epoch = []
        self.history = {}

    def state_dict(self) -> dict:
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = list(state["epoch"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self._resumed = True

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self):
        keys = ", ".join(self.history)
        return f"History(epochs={len(self.epoch)}, keys=[{keys}])"

    def plot(self, path, metrics=None, title: str | None = None):
        """Draw each metric (train and ``val_``) against the epoch into a PNG at ``path``.

        ``metrics``: names to draw (default: every recorded one without the
        ``val_`` prefix). Needs matplotlib (``pip install 'neuropil[examples]'``).
        Returns the matplotlib Figure.
        """
        try:
            import matplotlib
            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib, which is not installed: "
                              "pip install matplotlib (or neuropil[examples])") from None
        names = list(metrics) if metrics is not None else [
            k for k in self.history if not k.startswith("val_") and k != "lr"]
        unknown = [n for n in names if n not in self.history and "val_" + n not in self.history]
        if unknown or not names:
            raise ValueError(f"History.plot: nothing recorded for {unknown or names}; "
                             f"recorded: {list(self.history)}")
        fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(axes[0], names):
            for key, style in ((name, "-o"), ("val_" + name, "--s")):
                if key in self.history:
                    ax.plot(epochs, self.history[key], style, label=key, markersize=3)
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(os.fspath(path), dpi=100)
        plt.close(fig)
        return fig


def _monitor_op(mode: str, monitor: str, who: str):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        base = monitor[4:] if monitor.startswith("val_") else monitor
        mode = "max" if ("acc" in base or base in ("auc", "precision", "recall", "f1")) else "min"
    return mode


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving (Keras semantics).

    An epoch improves when ``current - min_delta`` is below the best so far
    (``mode="min"``; above it for ``"max"``; ``"auto"`` picks max for
    accuracy-like names, else min). After ``patience`` epochs without
    improvement, ``model.stop_training`` is set. With ``restore_best_weights``
    the weights of the best epoch are loaded back when training is stopped
    this way (as Keras: not when it runs to the last epoch). ``baseline``: an
    epoch must also beat it to reset the wait. ``start_from_epoch``: epochs
    before it are not monitored. ``stopped_epoch`` and ``best_epoch`` record
    what happened (0-based).
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        super().__init__()
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be a non-negative int, "
                             f"got {patience!r}")
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = start_from_epoch
        self.mode = _monitor_op(mode, monitor, "EarlyStopping")
        self.min_delta = abs(float(min_delta)) * (1 if self.mode == "max" else -1)
        self.wait = 0
        self.stopped_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None
        self.best_epoch = 0

    def _is_improvement(self, value, reference) -> bool:
        if reference is None:
            return True
        if self.mode == "min":
            return value - self.min_delta < reference
        return value - self.min_delta > reference

    def on_train_begin(self, logs=None):
        if self._take_resumed():
            return
        self.wait = 0
        self.stopped_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None
        self.best_epoch = 0

    def state_dict(self) -> dict:
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": self.best,
                "best_epoch": self.best_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        self.wait, self.stopped_epoch = int(state["wait"]), int(state["stopped_epoch"])
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.best_weights = state["best_weights"]
        self._resumed = True

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping: monitored value {self.monitor!r} is not in the logs "
                          f"(available: {sorted(logs or {})}); not stopping early",
                          RuntimeWarning, stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.state_dict()
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.state_dict()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self._restore()

    def _restore(self):
        if self.verbose > 0 and dist.rank() == 0:
            print(f"Restoring model weights from the end of the best epoch: "
                  f"{self.best_epoch + 1}.")
        self.model.load_state_dict(self.best_weights)

    def on_train_end(self, logs=None):
        if (logs or {}).get("interrupted") and self.restore_best_weights and \
                self.best_weights is not None:
            self._restore()  # Ctrl-C: leave the best model seen, as asked
        if self.stopped_epoch > 0 and self.verbose > 0 and dist.rank() == 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class ModelCheckpoint(Callback):
    """Save the weights (``model.save``: safetensors, atomic) at the end of epochs.

    ``path`` may hold ``str.format`` fields filled from the epoch (1-based)
    and the logs, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``.
    With ``save_best_only`` a file is written only when ``monitor`` improves
    (``mode`` as in EarlyStopping), so a fixed ``path`` always holds the best
    weights so far. ``best`` holds the best value seen.
    """

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", verbose: int = 0):
        super().__init__()
        self.path = os.fspath(path)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.verbose = verbose
        self.mode = _monitor_op(mode, monitor, "ModelCheckpoint")
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_train_begin(self, logs=None):
        if self._take_resumed():
            return
        self.best = math.inf if self.mode == "min" else -math.inf

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])
        self._resumed = True

    def _file(self, epoch, logs):
        try:
            return self.path.format(epoch=epoch + 1, **logs)
        except KeyError as err:
            raise KeyError(f"ModelCheckpoint: path {self.path!r} uses {err}, which is not in "
                           f"the logs {sorted(logs)}") from None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self._file(epoch, logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint: monitored value {self.monitor!r} is not in the "
                              f"logs (available: {sorted(logs)}); skipping",
                              RuntimeWarning, stacklevel=2)
                return
            better = current < self.best if self.mode == "min" else current > self.best
            if not better:
                return
            if self.verbose > 0 and dist.rank() == 0:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{current:.5f}, saving model to {path}")
            self.best = current
        elif self.verbose > 0 and dist.rank() == 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        if dist.rank() != 0:  # every rank holds the same weights: one writer
            return
        self.model.save(path, metadata={"epoch": str(epoch + 1),
                                        **{k: repr(float(v)) for k, v in logs.items()}})


class CSVLogger(Callback):
    """Write the epoch logs to a CSV file: a header ``epoch,<keys sorted>`` and
    one row per epoch (Keras's format), flushed each epoch. ``append`` keeps
    an existing file and does not repeat the header."""

    def __init__(self, filename, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self.keys = None
        self._file = None
        self._writer = None

    def on_train_begin(self, logs=None):
        if dist.rank() != 0:  # one log per job
            self._file = None
            self._take_resumed()
            return
        if self._take_resumed():
            # continue the file where the checkpoint left it (rows written after the
            # checkpoint by the killed run are cut off)
            self._file = open(self.filename, "r+" if os.path.exists(self.filename) else "w",
                              newline="")
            self._file.truncate(self._offset)
            self._file.seek(self._offset)
            if self.keys is not None:
                self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self.keys,
                                              delimiter=self.sep, extrasaction="ignore")
            return
        has_header = (self.append and os.path.exists(self.filename)
                      and os.path.getsize(self.filename) > 0)
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._has_header = has_header
        self.keys = None

    def state_dict(self) -> dict:
        offset = self._file.tell() if self._file is not None else 0
        return {"keys": self.keys, "offset": offset,
                "has_header": bool(getattr(self, "_has_header", False))}

    def load_state_dict(self, state: dict) -> None:
        self.keys = None if state["keys"] is None else list(state["keys"])
        self._offset = int(state["offset"])
        self._has_header = bool(state["has_header"])
        self._resumed = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._file is None:
            return
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self.keys,
                                          delimiter=self.sep, extrasaction="ignore")
            if not self._has_header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update({k: logs.get(k, "NA") for k in self.keys})
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None

    _abort = on_train_end  # fit failed: keep what was written, close the file


class LRScheduler(Callback):
    """Step a ``neuropil.optim`` schedule at the end of every epoch.

    ``ReduceLROnPlateau`` is given ``logs[monitor]``; other schedules are
    stepped with no argument. The learning rate used in the epoch is logged
    as ``lr``.
    """

    def __init__(self, scheduler, monitor: str = "val_loss"):
        super().__init__()
        if not hasattr(scheduler, "step"):
            raise TypeError(f"LRScheduler: scheduler must have a step() method, "
                            f"got {type(scheduler).__name__}")
        self.scheduler = scheduler
        self.monitor = monitor

    def state_dict(self) -> dict:
        return {"scheduler": self.scheduler.state_dict()} \
            if hasattr(self.scheduler, "state_dict") else {}

    def load_state_dict(self, state: dict) -> None:
        if "scheduler" in state:
            self.scheduler.load_state_dict(dict(state["scheduler"]))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(self.scheduler.optimizer.lr)
        if isinstance(self.scheduler, ReduceLROnPlateau):
            value = (logs or {}).get(self.monitor)
            if value is None:
                warnings.warn(f"LRScheduler: {self.monitor!r} is not in the logs "
                              f"(available: {sorted(logs or {})}); schedule not stepped",
                              RuntimeWarning, stacklevel=2)
                return
            self.scheduler.step(value)
        else:
            self.scheduler.step()


class LearningRateScheduler(Callback):
    """Keras's form: ``schedule(epoch, lr) -> new lr`` is applied at the start
    of every epoch (0-based); the rate is logged as ``lr``."""

    def __init__(self, schedule, verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise TypeError("LearningRateScheduler: schedule must be callable(epoch, lr)")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.schedule(epoch, float(self.optimizer.lr)))
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"LearningRateScheduler: schedule returned lr={lr!r} at epoch "
                             f"{epoch}; expected a finite value >= 0")
        self.optimizer.lr = lr
        if self.verbose > 0 and dist.rank() == 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(self.optimizer.lr)


def _format_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
                      for k, v in logs.items())


class ProgressBar(Callback):
    """Progress display used by ``fit(verbose=...)``: 1 = a bar per epoch (tqdm
    when installed, else a plain line redrawn at most 5 times a second),
    2 = one line per epoch. Writes to ``stream`` (stdout by default)."""

    def __init__(self, verbose: int = 1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        self._bar = None
        try:
            import tqdm  # noqa: F401
            self._tqdm = tqdm.tqdm
        except ImportError:
            self._tqdm = None

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        self._last = 0.0
        self._epoch = epoch
        self._head = f"Epoch {epoch + 1}/{self.params.get('epochs', '?')}"
        if self.verbose == 1 and self._tqdm is not None:
            self._bar = self._tqdm(total=self.params.get("steps"), desc=self._head,
                                   unit="batch", file=self.stream, leave=True,
                                   dynamic_ncols=True, mininterval=0.2)

    def on_batch_end(self, batch, logs=None):
        if self.verbose != 1:
            return
        if self._bar is not None:
            self._bar.update(1)
            return
        now = time.perf_counter()
        if now - self._last >= 0.2:
            self._last = now
            loss = (logs or {}).get("loss", float("nan"))
            self.stream.write(f"\r{self._head} {batch + 1}/{self.params.get('steps')} - "
                              f"loss: {loss:.4g}")
            self.stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._t0
        text = _format_logs(logs or {})
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.close()
            self._bar = None
            return
        prefix = "\r" if self.verbose == 1 else ""
        self.stream.write(f"{prefix}{self._head} - {elapsed:.1f}s - {text}\n")
        self.stream.flush()

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _abort(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.verbose == 1:
            self.stream.write("\n")
            self.stream.flush()
