"""Saving and loading arrays in the safetensors format, written and read here.

File layout (https://github.com/huggingface/safetensors, format section)::

    [8 bytes]  N, unsigned little-endian: length of the header
    [N bytes]  UTF-8 JSON: {"name": {"dtype": "F32", "shape": [2, 3],
                                     "data_offsets": [begin, end]}, ...,
                            "__metadata__": {"key": "value"}}   (optional, str -> str)
    [rest]     raw little-endian C-order data; offsets are relative to the
               start of this section, tensors are contiguous, non-overlapping
               and cover it exactly.

No pickle, nothing executable: loading parses JSON and copies bytes. Writes
are atomic: the data goes to a temporary file in the destination directory,
which is flushed, fsync'ed and renamed over the destination with
``os.replace``; if anything fails, the previous file is left as it was and the
temporary file is removed. A save killed outright leaves its temporary; the
next save of the same file removes it (see ``_atomic_write``). Loading checks the file's integrity and raises
``ValueError`` naming the file and what is wrong.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections import OrderedDict
from typing import Mapping

import numpy as np

__all__ = ["save", "load", "load_metadata"]

# safetensors dtype name <-> NumPy dtype (little-endian on disk). BF16 and the
# float8 types have no NumPy equivalent and are rejected on load with a message.
_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NAMES = {(dt.kind, dt.itemsize): name for name, dt in _DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit


def _fspath(path, fn: str) -> str:
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"{fn}: path must be a str or os.PathLike, "
                        f"got {type(path).__name__}") from None


def _prepare(state_dict: Mapping, fn: str):
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"{fn}: state_dict must be a mapping of names to arrays, "
                        f"got {type(state_dict).__name__}")
    entries = []
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"{fn}: every key must be a str, got {name!r}")
        if name == "__metadata__":
            raise ValueError(f"{fn}: '__metadata__' is reserved; pass metadata=")
        if hasattr(value, "data") and hasattr(value, "grad") and not isinstance(value, np.ndarray):
            value = value.data  # a Parameter
        arr = np.asarray(value)
        key = (arr.dtype.kind, arr.dtype.itemsize)
        if key not in _NAMES:
            raise TypeError(f"{fn}: {name!r} has dtype {arr.dtype}, which safetensors cannot "
                            f"store here; expected one of float16/32/64, (u)int8..64, bool")
        disk = _DTYPES[_NAMES[key]]
        arr = np.asarray(arr, dtype=disk, order="C")  # byte-swaps on big-endian hosts; keeps 0-d
        entries.append((name, _NAMES[key], arr))
    return entries


def save(state_dict: Mapping, path, metadata: Mapping[str, str] | None = None) -> None:
    """Write ``{name: array}`` to ``path`` in the safetensors format, atomically.

    Arrays may be any shape (0-d included) and of dtype float16/32/64,
    int8..64, uint8..64 or bool; ``nn.Parameter`` values are saved by their
    ``.data``. ``metadata`` is an optional ``{str: str}`` stored under
    ``__metadata__``. Files load in PyTorch with ``safetensors.torch.load_file``.
    """
    fn = "neuropil.save"
    path = _fspath(path, fn)
    entries = _prepare(state_dict, fn)
    header: dict = {}
    if metadata is not None:
        if not isinstance(metadata, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError(f"{fn}: metadata must be a dict of str to str")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, dname, arr in entries:
        header[name] = {"dtype": dname, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)  # data section 8-byte aligned, as safetensors writes it
    _atomic_write(path, [len(head).to_bytes(8, "little"), head] +
                  [memoryview(arr).cast("B") for _, _, arr in entries if arr.nbytes])


# A save writes ".<name>.<random>.<pid>.tmp" beside the target and holds an
# exclusive flock on it until the rename. A process killed mid-save (SIGKILL,
# OOM, power) leaves its temporary behind, and the kernel drops its lock; the
# next save of the same target removes every temporary of that target it can
# lock, so killed saves never pile up, while a save in progress (locked, in
# this or any process) is never touched. The pid is for people reading the
# directory; the lock is what decides.
try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - not POSIX: temporaries are not swept
    _fcntl = None


def _temp_pattern(base: str) -> "re.Pattern":
    # mkstemp's 8 random characters, then our pid (files from before the pid
    # was added have none)
    return re.compile(r"\." + re.escape(base) + r"\.[A-Za-z0-9_]{8}(\.[0-9]+)?\.tmp\Z")


def _try_lock(fd: int) -> bool:
    try:
        _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _remove_stale_temporaries(directory: str, base: str) -> None:
    """Delete the temporaries of ``base`` that no live save holds locked."""
    if _fcntl is None:
        return
    pattern = _temp_pattern(base)
    try:
        names = [n for n in os.listdir(directory) if pattern.match(n)]
    except OSError:
        return
    for name in names:
        full = os.path.join(directory, name)
        try:
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue  # gone already, or not ours to read
        try:
            if not _try_lock(fd):
                continue  # a save in progress
            # still the same file under that name? (never unlink a newcomer)
            if os.path.samestat(os.fstat(fd), os.stat(full, follow_symlinks=False)):
                os.unlink(full)
        except OSError:
            pass
        finally:
            os.close(fd)


def _locked_temporary(directory: str, base: str):
    """mkstemp beside the target, locked before anyone else can take it for stale."""
    while True:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + base + ".",
                                   suffix=f".{os.getpid()}.tmp")
        if _fcntl is None:
            return fd, tmp
        try:
            # A sweeper in another process may have locked and deleted it in
            # the instant between mkstemp and this lock: then start again.
            if _try_lock(fd) and os.path.samestat(os.fstat(fd),
                                                  os.stat(tmp, follow_symlinks=False)):
                return fd, tmp
        except OSError:
            pass
        os.close(fd)


def _atomic_write(path: str, chunks) -> None:
    """Write the byte chunks to ``path`` all or nothing (temporary, fsync, rename).

    Readers see the old complete file or the new complete one, even if this
    process is killed at any moment; stale temporaries of ``path`` left by
    killed saves are removed first.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"neuropil.save: directory {directory!r} does not exist")
    base = os.path.basename(path)
    _remove_stale_temporaries(directory, base)
    fd, tmp = _locked_temporary(directory, base)
    try:
        with os.fdopen(fd, "wb") as f:  # closing it (after the rename) drops the lock
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _read_header(f, path: str, fn: str):
    def bad(msg):
        return ValueError(f"{fn}: {path!r} is not a valid safetensors file: {msg}")

    size = os.fstat(f.fileno()).st_size
    if size < 8:
        raise bad(f"it has {size} bytes, fewer than the 8-byte header length")
    n = int.from_bytes(f.read(8), "little")
    if n < 2 or n > _MAX_HEADER or 8 + n > size:
        raise bad(f"header length {n} is impossible for a file of {size} bytes "
                  f"(truncated or not safetensors)")
    raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise bad(f"the header is not valid UTF-8 JSON ({err})") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise bad("__metadata__ must map strings to strings")
    data_size = size - 8 - n
    entries = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"entry {name!r} must have exactly dtype, shape and data_offsets")
        dname, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dname not in _DTYPES:
            known = ", ".join(_DTYPES)
            raise bad(f"entry {name!r} has dtype {dname!r}; neuropil reads {known}")
        if not (isinstance(shape, list) and all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
            raise bad(f"entry {name!r} has shape {shape!r}; expected a list of "
                      f"non-negative ints")
        if not (isinstance(offs, list) and len(offs) == 2 and all(
                isinstance(o, int) and not isinstance(o, bool) for o in offs)):
            raise bad(f"entry {name!r} has data_offsets {offs!r}; expected [begin, end]")
        begin, end = offs
        if not 0 <= begin <= end <= data_size:
            raise bad(f"entry {name!r} has data_offsets [{begin}, {end}] outside the "
                      f"{data_size}-byte data section (truncated?)")
        count = int(np.prod(shape, dtype=object)) if shape else 1
        if (end - begin) != count * _DTYPES[dname].itemsize:
            raise bad(f"entry {name!r}: {end - begin} bytes for shape {tuple(shape)} of "
                      f"{dname} (expected {count * _DTYPES[dname].itemsize})")
        entries.append((name, dname, tuple(shape), begin, end))
    pos = 0
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin != pos:
            raise bad(f"entry {name!r} starts at byte {begin} but the previous tensor ends "
                      f"at {pos} (tensors must be contiguous and non-overlapping)")
        pos = end
    if pos != data_size:
        raise bad(f"the data section has {data_size} bytes but the tensors cover {pos}")
    return entries, metadata or {}, 8 + n


def load(path) -> "OrderedDict[str, np.ndarray]":
    """Read a safetensors file into ``{name: array}`` (native byte order, writeable copies).

    Raises ``FileNotFoundError`` if there is no file and ``ValueError`` naming
    the problem when it is truncated, corrupted, or not safetensors at all.
    """
    fn = "neuropil.load"
    path = _fspath(path, fn)
    with open(path, "rb") as f:
        entries, _, start = _read_header(f, path, fn)
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for name, dname, shape, begin, end in entries:
            disk = _DTYPES[dname]
            f.seek(start + begin)
            raw = f.read(end - begin)
            if len(raw) != end - begin:
                raise ValueError(f"{fn}: {path!r} is truncated (entry {name!r})")
            arr = np.frombuffer(raw, dtype=disk).reshape(shape)
            out[name] = arr.astype(disk.newbyteorder("="), copy=True)
    return out


def load_metadata(path) -> dict:
    """The ``__metadata__`` dict of a safetensors file ({} when it has none); checks the header."""
    fn = "neuropil.load_metadata"
    path = _fspath(path, fn)
    with open(path, "rb") as f:
        return dict(_read_header(f, path, fn)[1])


def save_module(module, path, metadata: Mapping[str, str] | None = None) -> None:
    """``neuropil.save(module.state_dict(), path, metadata)``: the weights, keyed as PyTorch keys them."""
    save(module.state_dict(), path, metadata)


def load_module(module, path, strict: bool = True) -> None:
    """Load weights saved by :func:`save_module` (or PyTorch's safetensors) into ``module``.

    Validates before changing anything and lists every difference: names
    missing from the file or unknown to the model (with ``strict``), shapes
    and dtypes (a float64 file does not silently load into a float32 model:
    convert one of them first, e.g. ``model.double()``).
    """
    state = load(path)
    own = module.state_dict()
    problems = []
    if strict:
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing:
            problems.append(f"missing from the file: {missing}")
        if unexpected:
            problems.append(f"not in the model: {unexpected}")
    for name, arr in state.items():
        if name not in own:
            continue
        want = own[name]
        if arr.shape != want.shape:
            problems.append(f"{name}: model has shape {want.shape}, file has {arr.shape}")
        if arr.dtype != want.dtype:
            problems.append(f"{name}: model has dtype {want.dtype}, file has {arr.dtype}")
    if problems:
        raise ValueError(f"{type(module).__name__}.load({os.fspath(path)!r}): the file does not "
                         f"match the model: " + "; ".join(problems))
    module.load_state_dict(state, strict=strict)
