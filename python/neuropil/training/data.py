"""Where fit, evaluate and predict get their batches.

Three kinds of input, one interface:

* arrays in memory: converted once to the model's dtype and checked for NaN up
  front; a batch is gathered with ``np.take`` into a reused buffer;
* memory-mapped arrays (``np.load(path, mmap_mode="r")``, ``np.memmap``, or any
  array-like with ``shape``, ``dtype`` and ``__getitem__``): never read whole; each
  batch's rows are read in increasing file order, converted into a reused buffer and
  checked there;
* an iterable of ``(x, y)`` batches (a generator, a list, a loader object): each batch
  is copied into a reused buffer (a generator may reuse its own arrays) and checked.

Lazy sources are read by a background thread that stays one batch ahead (two
buffer slots: the one the model is using and the one being filled), so the kernels
are not idle while the next batch is read from disk or produced.

:class:`EpochPlan` splits an epoch's permutation between ranks: global step ``k``
takes positions ``[k*R*b, (k+1)*R*b)`` of the permutation and rank ``r`` the ``r``-th
block of ``b``; the short last step is split as evenly as possible (sizes differ by at
most one, some may be 0). No sample is dropped or doubled, and step ``k`` of R ranks
covers exactly the samples of step ``k`` of one process with batch ``R*b``.
"""
from __future__ import annotations

import queue
import threading

import numpy as np

from ._args import _FLOATS

__all__ = ["ArrayData", "IterableData", "EpochPlan", "Prefetcher", "is_lazy", "as_source"]


def is_lazy(x) -> bool:
    """Whether ``x`` should be read batch by batch instead of converted whole."""
    if isinstance(x, np.memmap):
        return True
    if isinstance(x, np.ndarray):
        return False
    return all(hasattr(x, a) for a in ("shape", "dtype", "__getitem__")) and \
        len(getattr(x, "shape", ())) >= 1


def _check_kind(fn, name, dtype):
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)
            or dtype == np.bool_):
        raise TypeError(f"{fn}: {name} must be numeric, got dtype {dtype}")


def _target_dtype(fn, name, dtype, model_dtype):
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        return np.dtype(np.int64)
    if np.issubdtype(dtype, np.floating):
        return np.dtype(model_dtype)
    raise TypeError(f"{fn}: {name} must hold integer labels or float targets, got {dtype}")


def _check_finite(fn, name, arr, where=""):
    if arr.dtype in _FLOATS and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{fn}: {name} contains NaN or inf (first at index {tuple(bad)}"
                         f"{where})")


class ArrayData:
    """``x`` (and ``y``) as arrays; in memory or lazy (see the module docstring)."""

    kind = "array"

    def __init__(self, fn, x, y, model_dtype, *, names=("x", "y"), need_y=True):
        from ._args import _as_inputs, _as_targets  # one conversion path for memory arrays
        xname, yname = names
        self.fn, self.names = fn, names
        self.lazy = is_lazy(x)
        if x is None:
            raise TypeError(f"{fn}: {xname} must be an array, got None")
        if self.lazy:
            if len(x.shape) == 0 or x.shape[0] == 0:
                raise ValueError(f"{fn}: {xname} is empty (shape {tuple(x.shape)}); "
                                 f"nothing to do")
            _check_kind(fn, xname, np.dtype(x.dtype))
            self.x = x
            self.x_dtype = np.dtype(model_dtype)
        else:
            self.x = _as_inputs(fn, x, model_dtype, xname)
            self.x_dtype = self.x.dtype
        self.n = int(self.x.shape[0])
        self.lo = 0  # a lazy source is a window [lo, lo + n) of its arrays (no slicing:
        #              slicing an h5py dataset would read it)
        self.y = None
        self.y_lazy = False
        if y is not None or need_y:
            if y is None:
                raise TypeError(f"{fn}: {yname} must be an array of targets, got None")
            if is_lazy(y):
                if len(y.shape) == 0:
                    raise ValueError(f"{fn}: {yname} must have a leading sample dimension, "
                                     f"got a scalar")
                if y.shape[0] != self.n:
                    raise ValueError(f"{fn}: {xname} has {self.n} samples but {yname} has "
                                     f"{y.shape[0]}; they must have the same length")
                self.y_lazy = True
                self.y = y
                self.y_dtype = _target_dtype(fn, yname, np.dtype(y.dtype), model_dtype)
            else:
                self.y = _as_targets(fn, y, self.n, model_dtype, yname)
                self.y_dtype = self.y.dtype
        self.any_lazy = self.lazy or self.y_lazy

    @property
    def sample_shape(self):
        return tuple(self.x.shape[1:])

    def y_sample(self, limit: int = 4096):
        """Targets to inspect before training (all of an in-memory y, a prefix of a lazy one)."""
        if self.y is None:
            return None
        if not self.y_lazy:
            return self.y
        return np.asarray(self.y[self.lo:self.lo + min(self.n, limit)]).astype(self.y_dtype)

    def window(self, lo: int, hi: int):
        """Samples ``lo..hi-1`` as a source of their own: views of in-memory arrays, a
        window of lazy ones (nothing is read)."""
        part = object.__new__(ArrayData)
        part.__dict__.update(self.__dict__)
        part.n = hi - lo
        if not self.lazy:
            part.x = self.x[lo:hi]
        if self.y is not None and not self.y_lazy:
            part.y = self.y[lo:hi]
        part.lo = self.lo + lo if self.any_lazy else 0
        return part

    def split(self, at: int):
        """(the first ``at`` samples, the rest)."""
        return self.window(0, at), self.window(at, self.n)

    def shard(self, rank: int, world: int):
        """Contiguous block ``rank`` of ``world`` (for validation data); may be empty."""
        return self.window(self.n * rank // world, self.n * (rank + 1) // world)

    # -- gathering --------------------------------------------------------------
    def _buffers(self, slot: dict, size: int):
        bufs = slot.get(size)
        if bufs is None:
            xb = np.empty((size,) + self.sample_shape, self.x_dtype)
            yb = None if self.y is None else \
                np.empty((size,) + tuple(self.y.shape[1:]), self.y_dtype)
            bufs = slot[size] = (xb, yb)
        return bufs

    def gather(self, idx, lo: int, hi: int, slot: dict):
        """Batch ``(xb, yb)``: samples ``idx`` (or the range ``lo:hi`` when ``idx`` is
        None) in that order. In-memory contiguous ranges are views; everything else
        lands in ``slot``'s reused buffers."""
        size = hi - lo if idx is None else len(idx)
        if idx is None and not self.any_lazy:
            return self.x[lo:hi], (None if self.y is None else self.y[lo:hi])
        xb, yb = self._buffers(slot, size)
        # in-memory arrays of a lazy source are sliced views (offset 0), lazy ones
        # are whole and read at lo + offset
        xoff = self.lo if self.lazy else 0
        yoff = self.lo if self.y_lazy else 0
        if idx is not None:
            order = np.argsort(idx, kind="stable") if self.any_lazy else None
            self._take(self.x, idx, order, xb, self.lazy, xoff)
            if self.y is not None:
                self._take(self.y, idx, order, yb, self.y_lazy, yoff)
        else:
            np.copyto(xb, self.x[xoff + lo:xoff + hi], casting="unsafe")
            if self.y is not None:
                np.copyto(yb, self.y[yoff + lo:yoff + hi], casting="unsafe")
        if self.lazy:
            where = f" of the batch of samples {lo}..{hi - 1}" if idx is None else \
                " of a batch read from the memory-mapped input"
            _check_finite(self.fn, self.names[0], xb, where)
        if self.y_lazy:
            _check_finite(self.fn, self.names[1], yb)
        return xb, yb

    @staticmethod
    def _take(src, idx, order, out, lazy, offset=0):
        if not lazy:
            np.take(src, idx, axis=0, out=out, mode="clip")
            return
        # read the rows in file order (sequential pages), place them in batch order
        rows = np.asarray(src[idx[order] + offset])
        out[order] = rows


class IterableData:
    """An iterable of ``(x, y)`` batches (or of ``x`` batches for predict)."""

    kind = "iterable"
    lazy = True

    def __init__(self, fn, source, model_dtype, *, need_y=True, steps=None):
        if isinstance(source, (str, bytes, dict)):
            raise TypeError(f"{fn}: x must be an array or an iterable of (x, y) batches, "
                            f"got {type(source).__name__}")
        self.fn = fn
        self.source = source
        self.x_dtype = np.dtype(model_dtype)
        self.need_y = need_y
        self.steps = steps
        self.one_shot = iter(source) is source if hasattr(source, "__iter__") else True
        self._iterator = None
        self.exhausted = False
        self.n = None

    def epoch_iterator(self):
        """The iterator for the next epoch: a fresh pass over a re-iterable source; a
        persistent iterator when ``steps`` batches are taken per epoch or the source is
        a one-shot generator."""
        if self.steps is None and not self.one_shot:
            return iter(self.source)
        if self._iterator is None:
            self._iterator = iter(self.source) if hasattr(self.source, "__iter__") \
                else self.source
        return self._iterator

    def convert(self, item, slot: dict, index: int):
        fn = self.fn
        if self.need_y:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(f"{fn}: batch {index} of the iterable must be a pair "
                                f"(x, y), got {type(item).__name__}")
            x, y = item
        else:
            x = item[0] if isinstance(item, (tuple, list)) else item
            y = None
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"{fn}: batch {index} of the iterable has x of shape {x.shape}; "
                             f"expected (batch, ...) with batch >= 1")
        _check_kind(fn, f"x of batch {index}", x.dtype)
        xb = _reuse(slot, "x", x.shape, self.x_dtype)
        np.copyto(xb, x, casting="unsafe")
        _check_finite(fn, f"x of batch {index}", xb)
        yb = None
        if y is not None:
            y = np.asarray(y)
            if y.ndim == 0 or y.shape[0] != x.shape[0]:
                raise ValueError(f"{fn}: batch {index} of the iterable has {x.shape[0]} "
                                 f"inputs but y of shape {y.shape}; they must have the same "
                                 f"length")
            ydt = _target_dtype(fn, f"y of batch {index}", y.dtype, self.x_dtype)
            yb = _reuse(slot, "y", y.shape, ydt)
            np.copyto(yb, y, casting="unsafe")
            _check_finite(fn, f"y of batch {index}", yb)
        return xb, yb


def _reuse(slot: dict, name: str, shape, dtype):
    arr = slot.get(name)
    if arr is None or arr.shape != shape or arr.dtype != dtype:
        arr = slot[name] = np.empty(shape, dtype)
    return arr


def as_source(fn, x, y, model_dtype, *, need_y=True, steps=None, names=("x", "y")):
    """ArrayData for arrays and memmaps, IterableData for an iterable of batches."""
    if x is not None and not isinstance(x, np.ndarray) and not is_lazy(x) and \
            not isinstance(x, (list, tuple)) and (hasattr(x, "__iter__") or
                                                    hasattr(x, "__next__")):
        if y is not None:
            raise ValueError(f"{fn}: x is an iterable of batches, so y must be None "
                             f"(each batch carries its own targets)")
        return IterableData(fn, x, model_dtype, need_y=need_y, steps=steps)
    return ArrayData(fn, x, y, model_dtype, names=names, need_y=need_y)


class EpochPlan:
    """Which positions of an epoch's order each rank takes at each step (module doc)."""

    def __init__(self, n: int, batch_size: int, world: int = 1, rank: int = 0):
        self.n, self.b, self.world, self.rank = n, batch_size, world, rank
        self.steps = -(-n // (batch_size * world))

    def sizes(self, k: int) -> list[int]:
        """Every rank's batch size at step ``k``."""
        start = k * self.world * self.b
        total = min(self.world * self.b, self.n - start)
        if total == self.world * self.b:
            return [self.b] * self.world
        q, rem = divmod(total, self.world)
        return [q + (r < rem) for r in range(self.world)]

    def bounds(self, k: int) -> tuple[int, int]:
        """``(lo, hi)`` positions of this rank's batch at step ``k``."""
        start = k * self.world * self.b
        sizes = self.sizes(k)
        lo = start + sum(sizes[:self.rank])
        return lo, lo + sizes[self.rank]


class _Failure:
    def __init__(self, exc):
        self.exc = exc


class Prefetcher:
    """Produces batches on a background thread, one ahead of the consumer.

    ``produce(i, slot)`` makes item ``i`` using the reused buffers in ``slot`` (one of
    two dicts) and returns it, or ``None`` when the source is exhausted. The consumer
    calls :meth:`next`; the slot of the item it got before is then free for the
    item after the next. Exceptions in ``produce`` are raised by :meth:`next`.
    """

    def __init__(self, produce, count: int | None):
        self._produce = produce
        self._count = count
        self._slots = [{}, {}]
        self._free = threading.Semaphore(2)
        self._ready: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._held = False
        self._done = False
        self._thread = threading.Thread(target=self._run, name="neuropil-prefetch",
                                        daemon=True)
        self._thread.start()

    def _run(self):
        i = 0
        while self._count is None or i < self._count:
            while not self._free.acquire(timeout=0.1):
                if self._stop.is_set():
                    return
            if self._stop.is_set():
                return
            try:
                item = self._produce(i, self._slots[i % 2])
            except BaseException as exc:  # handed to the consumer, raised there
                self._ready.put(_Failure(exc))
                return
            self._ready.put(item)
            if item is None:
                return
            i += 1

    def next(self):
        """The next item; None once the source is exhausted (and ever after)."""
        if self._done:
            return None
        if self._held:
            self._free.release()
        item = self._ready.get()
        self._held = True
        if isinstance(item, _Failure):
            self._done = True
            raise item.exc
        if item is None:
            self._done = True
        return item

    def close(self):
        self._stop.set()
        self._free.release()
        self._thread.join(timeout=5.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
