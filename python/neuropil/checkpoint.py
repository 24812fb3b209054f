"""Training checkpoints: everything a killed run needs to resume exactly.

A checkpoint is one safetensors file (written by ``neuropil.io``: temp file, fsync,
rename, so a crash mid-write leaves the previous checkpoint intact). Its arrays are
the tensors: weights and buffers (``model/...``), optimizer state (momenta, Adam
moments: ``optimizer/...``) and callbacks' arrays (EarlyStopping's best weights);
the rest travels as one small JSON document in the file's metadata: epoch and
position within the epoch, learning rates and step counts, scheduler state, the
random generators' states, the running loss/metric sums of the epoch (per rank) and
every callback's ``state_dict()``.

Use it through ``fit``::

    model.fit(x, y, ..., callbacks=[BackupAndRestore("run.ckpt", save_freq=200)])

writes ``run.ckpt`` at every epoch end and every 200 batches; run the same script
again after a crash (or SIGKILL) and it resumes from there, ending with bitwise the
weights of a run that was never interrupted. ``fit(..., resume_from="run.ckpt")``
resumes explicitly from any such file. Under MPI only rank 0 writes; on resume rank 0
reads and broadcasts, so the file need not be on a shared file system.
"""
from __future__ import annotations

import json
import math
import os
from collections import OrderedDict

import numpy as np

from . import distributed as dist
from . import io
from .callbacks import Callback

__all__ = ["BackupAndRestore", "save_checkpoint", "load_checkpoint", "FORMAT"]

FORMAT = "neuropil.training-checkpoint"
VERSION = 1


# -- a tree of dicts, lists, scalars and arrays <-> (JSON, {name: array}) --------------

def _encode(value, path: str, arrays: dict):
    if isinstance(value, np.ndarray):
        arrays[path] = value
        return {"__array__": path}
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, (list, tuple)):
        out = [_encode(v, f"{path}/{i}", arrays) for i, v in enumerate(value)]
        return out if isinstance(value, list) else {"__tuple__": out}
    if isinstance(value, dict):
        items = [[_encode(k, f"{path}/key{i}", arrays), _encode(v, f"{path}/{k}", arrays)]
                 for i, (k, v) in enumerate(value.items())]
        return {"__dict__": items}
    raise TypeError(f"checkpoint: cannot store {path!r} of type {type(value).__name__}; "
                    f"a callback's state_dict() may hold only dicts, lists, numbers, "
                    f"strings and numpy arrays")


def _decode(value, arrays: dict):
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if isinstance(value, dict):
        if "__array__" in value:
            return arrays[value["__array__"]]
        if "__float__" in value:
            return float(value["__float__"])
        if "__tuple__" in value:
            return tuple(_decode(v, arrays) for v in value["__tuple__"])
        if "__dict__" in value:
            return OrderedDict((_decode(k, arrays), _decode(v, arrays))
                               for k, v in value["__dict__"])
    return value


def save_checkpoint(path, state: dict) -> None:
    """Write the training-state tree ``state`` to ``path`` atomically (safetensors +
    JSON metadata)."""
    arrays: dict = OrderedDict()
    doc = _encode(state, "state", arrays)
    meta = {"format": FORMAT, "version": str(VERSION), "state": json.dumps(doc)}
    io.save(arrays, path, metadata=meta)


def load_checkpoint(path) -> dict:
    """Read a file written by :func:`save_checkpoint` back into its tree.

    Raises ``ValueError`` naming the file when it is not a neuropil training
    checkpoint (e.g. a plain weights file from ``model.save``)."""
    path = os.fspath(path)
    meta = io.load_metadata(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"load_checkpoint: {path!r} is not a neuropil training checkpoint "
                         f"(metadata format {meta.get('format')!r}); a weights file from "
                         f"model.save() loads with model.load()")
    if int(meta.get("version", "0")) > VERSION:
        raise ValueError(f"load_checkpoint: {path!r} has format version {meta['version']}, "
                         f"newer than this neuropil reads ({VERSION})")
    arrays = io.load(path)
    return _decode(json.loads(meta["state"]), arrays)


class BackupAndRestore(Callback):
    """Keras's BackupAndRestore: checkpoint the whole training state to ``path`` and
    resume from it when the same ``fit`` is run again.

    ``save_freq``: ``"epoch"`` (at each epoch end) or an int N (also every N batches,
    so a long epoch killed midway loses at most N batches). At the start of ``fit``, an
    existing ``path`` is loaded and training continues at the saved epoch and batch.
    With ``delete_checkpoint`` the file is removed when training ends normally (not
    when it is interrupted with Ctrl-C: then a checkpoint of the point where it
    stopped is written, ready to resume). Only rank 0 of an MPI job writes.
    """

    def __init__(self, path, save_freq="epoch", delete_checkpoint: bool = True):
        super().__init__()
        self.path = os.fspath(path)
        if save_freq != "epoch" and (isinstance(save_freq, bool) or
                                     not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"BackupAndRestore: save_freq must be 'epoch' or a positive int "
                             f"(batches), got {save_freq!r}")
        self.save_freq = save_freq
        self.delete_checkpoint = bool(delete_checkpoint)

    # called by fit (not through the hook list): after every callback's hook has run,
    # so the saved state includes what they did in that hook
    def resume_path(self):
        exists = os.path.exists(self.path) if dist.rank() == 0 else None
        return self.path if dist.broadcast_object(exists) else None

    def after_batch(self, trainer, batch: int) -> None:
        if self.save_freq != "epoch" and (batch + 1) % self.save_freq == 0:
            trainer.write_checkpoint(self.path)

    def after_epoch(self, trainer, epoch: int) -> None:
        trainer.write_checkpoint(self.path)

    def after_train(self, trainer, interrupted: bool) -> None:
        if interrupted:
            trainer.write_checkpoint(self.path)
        elif self.delete_checkpoint and dist.rank() == 0 and os.path.exists(self.path):
            os.unlink(self.path)
