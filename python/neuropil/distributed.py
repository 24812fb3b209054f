"""Data-parallel training over MPI, in Horovod's shape::

    from neuropil import distributed as dist
    dist.init()                                # under mpiexec: MPI; alone: a world of 1
    dist.rank(), dist.world_size(), dist.local_rank()
    dist.broadcast_parameters(model, root=0)   # parameters and buffers
    dist.allreduce_gradients(model)            # every p.grad averaged across ranks, in place
    model.fit(x, y, ...)                       # with more than one rank: data-parallel

MPI comes from mpi4py (``pip install "neuropil[mpi]"`` brings mpi4py and the MPICH
wheel). Without it this module still imports, and ``init()`` outside an MPI launcher
gives a world of one process, so nothing else in neuropil needs MPI.

Gradients travel in a few large contiguous buckets: each parameter's ``grad`` is
re-pointed, once, at a slice of a flat per-bucket buffer, so layers accumulate
straight into the buffer that MPI reduces (no copies), and each bucket is one
non-blocking all-reduce. Every rank receives the same sums (MPI's reductions give
all ranks one result), applies the same update and so holds bitwise the same
parameters after every step.

One rank failing (an exception) leaves the others waiting in a collective forever,
so ``init()`` installs an exception hook that prints the traceback, prefixed with the
rank, and aborts the whole job (``MPI_Abort``); ``fit`` does the same for an exception
inside its loop.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
import weakref

import numpy as np

from . import functional as F
from ._config import set_num_threads

__all__ = ["init", "is_initialized", "is_distributed", "rank", "world_size", "local_rank",
           "local_size", "barrier", "broadcast_parameters", "broadcast_optimizer_state",
           "broadcast_object", "allreduce", "allreduce_gradients", "allgather_object",
           "abort", "GradientReducer", "launched_by_mpi"]

# environment variables by which MPI launchers (MPICH/Hydra, Open MPI, MVAPICH, PMIx)
# tell a process the size of its job
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")
_THREAD_VARS = ("NEUROPIL_NUM_THREADS", "OMP_NUM_THREADS")
DEFAULT_BUCKET_BYTES = 1 << 20


class _World:
    """The state of this process's distributed world (one instance, module-level)."""

    def __init__(self):
        self.initialized = False
        self.comm = None       # mpi4py communicator, or None for a world of 1
        self.MPI = None
        self.rank = 0
        self.size = 1
        self.local_rank = 0
        self.local_size = 1


_world = _World()


def launched_by_mpi() -> int:
    """The job size an MPI launcher announced in the environment (0 when none did)."""
    for var in _SIZE_VARS:
        value = os.environ.get(var)
        if value and value.strip().isdigit():
            return int(value)
    return 0


def _import_mpi():
    try:
        import mpi4py
    except ImportError:
        return None
    # only the thread that called init() talks to MPI (fit's prefetch thread never does)
    mpi4py.rc.thread_level = "funneled"
    from mpi4py import MPI
    return MPI


def init(backend: str = "auto") -> None:
    """Join the job's world. Idempotent.

    ``backend="auto"``: MPI (through mpi4py) when an MPI launcher started this
    process, else a world of one without touching MPI. ``"mpi"``: MPI always (a
    process started without a launcher is then a world of one MPI process).
    ``"none"``: a world of one. Raises ``RuntimeError`` when a launcher started more
    than one process but mpi4py is not installed (training the same model
    independently N times would be silently wrong).

    With more than one rank: the thread count defaults to (cores of this node) /
    (ranks on this node) unless ``NEUROPIL_NUM_THREADS`` or ``OMP_NUM_THREADS`` is
    set, and an uncaught exception on any rank prints its traceback and aborts
    the whole job instead of leaving the other ranks waiting.
    """
    if backend not in ("auto", "mpi", "none"):
        raise ValueError(f"distributed.init: backend must be 'auto', 'mpi' or 'none', "
                         f"got {backend!r}")
    if _world.initialized:
        return
    size_hint = launched_by_mpi()
    if backend == "none" or (backend == "auto" and not size_hint):
        _world.initialized = True
        return
    MPI = _import_mpi()
    if MPI is None:
        if backend == "mpi" or size_hint > 1:
            raise RuntimeError(
                f"distributed.init: this process was started by an MPI launcher as one of "
                f"{size_hint} processes, but mpi4py is not installed; "
                f"pip install 'neuropil[mpi]' (mpi4py and MPICH)" if size_hint > 1 else
                "distributed.init(backend='mpi'): mpi4py is not installed; "
                "pip install 'neuropil[mpi]' (mpi4py and MPICH)")
        _world.initialized = True
        return
    comm = MPI.COMM_WORLD
    _world.MPI, _world.comm = MPI, comm
    _world.rank, _world.size = comm.Get_rank(), comm.Get_size()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=_world.rank)
    _world.local_rank, _world.local_size = node.Get_rank(), node.Get_size()
    cpus = _cpus()
    node_cpus = set().union(*node.allgather(cpus))
    node.Free()
    _world.initialized = True
    if _world.size > 1:
        if not any(os.environ.get(v) for v in _THREAD_VARS):
            share = max(1, len(node_cpus) // _world.local_size)
            set_num_threads(max(1, min(share, len(cpus))))
        _install_excepthook()


def _cpus() -> set:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


def _require_init() -> _World:
    if not _world.initialized:
        init()
    return _world


def is_initialized() -> bool:
    return _world.initialized


def is_distributed() -> bool:
    """True after ``init()`` in a world of more than one rank."""
    return _world.initialized and _world.size > 1


def rank() -> int:
    """This process's rank in the world (0 .. world_size()-1); calls ``init()`` if needed."""
    return _require_init().rank


def world_size() -> int:
    return _require_init().size


def local_rank() -> int:
    """Rank among the processes on this node (shared-memory domain)."""
    return _require_init().local_rank


def local_size() -> int:
    return _require_init().local_size


def barrier() -> None:
    w = _require_init()
    if w.comm is not None:
        w.comm.Barrier()


def abort(code: int = 1) -> None:
    """End every rank of the job now (``MPI_Abort``); a plain exit in a world of one."""
    sys.stdout.flush()
    sys.stderr.flush()
    if _world.comm is not None and _world.size > 1:
        # MPI_Abort tears down the launcher's output forwarding at once: give it a moment to
        # pass on what this rank just printed (the traceback), or a loaded machine loses it.
        time.sleep(0.5)
        _world.comm.Abort(code)
    os._exit(code)


def report_and_abort(exc: BaseException, code: int = 1) -> None:
    """Print ``exc``'s traceback prefixed with this rank, then abort the whole job."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    prefix = f"[rank {_world.rank}] "
    sys.stderr.write(f"{prefix}neuropil.distributed: an exception on rank {_world.rank} of "
                     f"{_world.size}; aborting the job so that no rank waits for it\n")
    sys.stderr.write("".join(prefix + line + "\n" for line in text.rstrip("\n").split("\n")))
    abort(code)


def _install_excepthook() -> None:
    previous = sys.excepthook

    def hook(kind, value, tb):
        if issubclass(kind, SystemExit):
            return previous(kind, value, tb)
        report_and_abort(value.with_traceback(tb) if value is not None else kind())

    sys.excepthook = hook


# -- collectives on arrays and objects ------------------------------------------------

def _buffer(arr: np.ndarray, fn: str, name: str = "array") -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray, got {type(arr).__name__}")
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError(f"{fn}: {name} must be C-contiguous and writeable (it is updated "
                         f"in place), got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{fn}: {name} has dtype {arr.dtype}; expected a numeric array")
    return arr


def _check_root(fn: str, root) -> int:
    size = _require_init().size
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or \
            not 0 <= root < size:
        raise ValueError(f"{fn}: root must be a rank in 0..{size - 1}, got {root!r}")
    return int(root)


def broadcast_object(obj, root: int = 0):
    """``obj`` from ``root`` to every rank (pickled by mpi4py; for small objects)."""
    root = _check_root("broadcast_object", root)
    w = _world
    return obj if w.comm is None else w.comm.bcast(obj, root=root)


def allgather_object(obj) -> list:
    """Every rank's ``obj``, in rank order."""
    w = _require_init()
    return [obj] if w.comm is None else w.comm.allgather(obj)


def broadcast_parameters(model, root: int = 0) -> None:
    """Copy ``root``'s parameters and buffers into every rank's ``model``, in place.

    Call it once before training so that every rank starts from the same weights
    (``fit`` does it for you in a world of more than one rank)."""
    fn = "broadcast_parameters"
    root = _check_root(fn, root)
    if not (hasattr(model, "named_parameters") and hasattr(model, "named_buffers")):
        raise TypeError(f"{fn}: model must be a neuropil.nn.Module, got {type(model).__name__}")
    w = _world
    if w.comm is None:
        return
    arrays = [p.data for _, p in model.named_parameters()]
    arrays += [b for _, b in model.named_buffers() if isinstance(b, np.ndarray)]
    names = [n for n, _ in model.named_parameters()] + \
        [n for n, b in model.named_buffers() if isinstance(b, np.ndarray)]
    shapes = [(a.shape, a.dtype.str) for a in arrays]
    if w.comm.bcast(shapes, root=root) != shapes:
        raise ValueError(f"{fn}: the models differ between ranks (names, shapes or dtypes); "
                         f"every rank must build the same architecture: {names}")
    for arr in arrays:
        w.comm.Bcast(_buffer(arr, fn, "parameter"), root=root)


def broadcast_optimizer_state(optimizer, root: int = 0) -> None:
    """Give every rank ``root``'s optimizer state (moments, step counts, learning rates)."""
    root = _check_root("broadcast_optimizer_state", root)
    if _world.comm is None:
        return
    state = _world.comm.bcast(optimizer.state_dict() if _world.rank == root else None,
                              root=root)
    optimizer.load_state_dict(state)


def allreduce(array: np.ndarray, op: str = "average") -> np.ndarray:
    """Reduce ``array`` across ranks in place (``"average"``, ``"sum"``, ``"max"`` or
    ``"min"``) and return it. Every rank gets bitwise the same result."""
    fn = "allreduce"
    array = _buffer(array, fn)
    if op not in ("average", "sum", "max", "min"):
        raise ValueError(f"{fn}: op must be 'average', 'sum', 'max' or 'min', got {op!r}")
    w = _require_init()
    if w.comm is None:
        return array
    MPI = w.MPI
    mpi_op = {"average": MPI.SUM, "sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    w.comm.Allreduce(MPI.IN_PLACE, array, op=mpi_op)
    if op == "average":
        if array.dtype.kind != "f":
            raise TypeError(f"{fn}: op='average' needs a float array, got {array.dtype}")
        array *= array.dtype.type(1.0 / w.size)
    return array


# -- gradients in buckets ----------------------------------------------------------------

class GradientReducer:
    """Sums the gradients of ``params`` across ranks in a few contiguous buckets.

    Parameters are taken in reverse order (the order a backward pass finishes
    them) and packed into buckets of about ``bucket_bytes``; each parameter's
    ``grad`` becomes a view of its bucket, so layers write into the buffer that is
    reduced. ``extras`` float slots travel at the end of the last bucket: small
    per-step values (sample counts, flags) summed for free with the gradients.

    One step: ``start(scale)`` (optional pre-scale of the local gradients),
    ``mark_ready(param)`` as the backward finishes parameters (a bucket whose
    parameters are all ready starts its non-blocking all-reduce at once; optional),
    then ``finish(extras, post_scale)`` which starts what is left, waits for every
    bucket, multiplies the sums by ``post_scale`` and returns the summed extras.
    """

    def __init__(self, params, bucket_bytes: int = DEFAULT_BUCKET_BYTES, extras: int = 0):
        w = _require_init()
        self._world = w
        self.params = [p for p in params if p.requires_grad]
        self.bucket_bytes = int(bucket_bytes)
        self.extras = int(extras)
        self.buckets: list[dict] = []
        self._bucket_of: dict[int, int] = {}
        self._build()

    def _build(self) -> None:
        groups: list[list] = []
        size = 0
        for p in reversed(self.params):
            nbytes = p.data.nbytes
            if not groups or size + nbytes > self.bucket_bytes or \
                    groups[-1][0].data.dtype != p.data.dtype:
                groups.append([])
                size = 0
            groups[-1].append(p)
            size += nbytes
        if not groups:
            groups.append([])
        self.buckets = []
        self._bucket_of = {}
        for i, group in enumerate(groups):
            dtype = group[0].data.dtype if group else np.dtype(np.float32)
            n = sum(p.data.size for p in group)
            extra = self.extras if i == len(groups) - 1 else 0
            flat = np.zeros(n + extra, dtype)
            views, offset = [], 0
            for p in group:
                view = flat[offset:offset + p.data.size].reshape(p.data.shape)
                np.copyto(view, p.grad)  # keep whatever was accumulated so far
                p.grad = view
                views.append(view)
                self._bucket_of[id(p)] = i
                offset += p.data.size
            self.buckets.append({"flat": flat, "grads": flat[:n], "extra": flat[n:],
                                 "params": group, "views": views, "pending": len(group),
                                 "request": None})

    @property
    def num_buckets(self) -> int:
        return len(self.buckets)

    def matches(self, params) -> bool:
        """Whether this reducer still serves ``params`` (same trainable set, grads bound)."""
        want = [p for p in params if p.requires_grad]
        return len(want) == len(self.params) and all(
            a is b for a, b in zip(want, self.params)) and all(
            p._grad is v for b in self.buckets for p, v in zip(b["params"], b["views"]))

    def start(self, scale: float = 1.0) -> None:
        """Begin a step: check the gradients still live in the buckets (rebuilding
        them if someone re-pointed a grad), remember the pre-scale."""
        if not all(p._grad is v for b in self.buckets for p, v in zip(b["params"], b["views"])):
            self._build()
        self._scale = float(scale)
        self._ready_ids = set()
        self.wait_seconds = 0.0
        for b in self.buckets:
            b["pending"] = len(b["params"])
            b["request"] = None

    def _launch(self, b: dict) -> None:
        for p in b["params"]:
            p.grad  # noqa: B018 - a gradient still marked zero is filled now
        if self._scale != 1.0 and b["grads"].size:
            F.scale_(b["grads"], self._scale)
        w = self._world
        if w.comm is not None and w.size > 1:
            b["request"] = w.comm.Iallreduce(w.MPI.IN_PLACE, b["flat"], op=w.MPI.SUM)

    def mark_ready(self, p) -> None:
        """``p``'s gradient is final for this step (optional: enables overlap)."""
        i = self._bucket_of.get(id(p))
        if i is None or id(p) in self._ready_ids:
            return
        self._ready_ids.add(id(p))
        b = self.buckets[i]
        b["pending"] -= 1
        if b["pending"] == 0 and i != len(self.buckets) - 1:  # the last one carries extras
            self._launch(b)
        for other in self.buckets:  # MPI progresses only inside MPI calls: poke it
            if other["request"] is not None:
                other["request"].Test()

    def finish(self, extras=None, post_scale: float = 1.0) -> np.ndarray:
        """Start the buckets not started yet, wait for all, apply ``post_scale``;
        returns the extras summed over ranks (float64 copy)."""
        last = self.buckets[-1]
        if self.extras:
            values = np.zeros(self.extras) if extras is None else np.asarray(extras, float)
            last["extra"][:] = values
        t0 = time.perf_counter()
        for b in self.buckets:
            if b["request"] is None:
                self._launch(b)
        for b in self.buckets:
            if b["request"] is not None:
                b["request"].Wait()
                b["request"] = None
        self.wait_seconds = time.perf_counter() - t0  # the all-reduce time not hidden
        if post_scale != 1.0:
            for b in self.buckets:
                if b["grads"].size:
                    F.scale_(b["grads"], post_scale)
        return last["extra"].astype(np.float64)

    def scale(self, factor: float) -> None:
        """Multiply every reduced gradient by ``factor`` (e.g. 1 / total batch)."""
        if factor != 1.0:
            for b in self.buckets:
                if b["grads"].size:
                    F.scale_(b["grads"], factor)


@contextlib.contextmanager
def gradient_ready_hooks(model, reducer):
    """Tell ``reducer`` when each parameter's gradient is final, so that its bucket's
    all-reduce starts while the backward pass goes on (overlap).

    Uses the parameters' post-accumulate-grad hooks, which a model's derived backward
    fires as soon as a parameter's last layer call has run its backward (a parameter the
    backward does not reach is left to the reducer's ``finish``). Yields a per-step reset
    (nothing to reset: the hooks fire once per backward).
    """
    handles = [p.register_post_accumulate_grad_hook(reducer.mark_ready)
               for p in model.parameters() if p.requires_grad]
    try:
        yield lambda: None
    finally:
        for h in handles:
            h.remove()


_reducers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def reducer_for(model, bucket_bytes: int = DEFAULT_BUCKET_BYTES, extras: int = 0):
    """The model's GradientReducer (built on first use, rebuilt when its trainable
    parameters or bucket settings changed)."""
    params = model.parameters()
    r = _reducers.get(model)
    if r is None or not r.matches(params) or r.bucket_bytes != bucket_bytes or \
            r.extras != extras:
        r = GradientReducer(params, bucket_bytes, extras)
        _reducers[model] = r
    return r


def overlap_requested() -> bool:
    """Whether fit overlaps the all-reduce with the backward pass
    (``NEUROPIL_ALLREDUCE_OVERLAP=1``; off by default: see docs/scaling.md)."""
    return os.environ.get("NEUROPIL_ALLREDUCE_OVERLAP", "0").strip() not in ("", "0")


def allreduce_gradients(model, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
    """Average every trainable parameter's ``grad`` across ranks, in place.

    For hand-written loops: call it between ``backward`` and ``optimizer.step()``.
    Gradients travel in buckets of about ``bucket_bytes``."""
    if not hasattr(model, "parameters"):
        raise TypeError(f"allreduce_gradients: model must be a neuropil.nn.Module, "
                        f"got {type(model).__name__}")
    w = _require_init()
    if w.comm is None or w.size == 1:
        return
    r = reducer_for(model, bucket_bytes)
    r.start()
    r.finish(post_scale=1.0 / w.size)

