"""Real datasets available offline.

``load_fashion_mnist`` reads the idx files of Debian's ``dataset-fashion-mnist``
package (Xiao, Rasul & Vollgraf 2017: 60,000 training and 10,000 test images,
28x28 grey levels, 10 classes of clothing).
"""
from __future__ import annotations

import gzip
import os

import numpy as np

__all__ = ["load_fashion_mnist", "FASHION_MNIST_CLASSES", "DatasetNotFoundError"]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}


class DatasetNotFoundError(FileNotFoundError):
    """An offline dataset is not installed; the message says how to install it."""


def _open(path: str) -> bytes:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"load_fashion_mnist: cannot read {path!r}: {err}") from None


def _read_idx(path: str, ndim: int, count: int, item_shape: tuple) -> np.ndarray:
    """Parse an idx file of unsigned bytes: magic 0x0000_08_<ndim>, then ndim
    big-endian int32 sizes, then the data."""
    raw = _open(path)
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ValueError(f"load_fashion_mnist: {path!r} is too short for an idx header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != 0x0800 + ndim:
        raise ValueError(f"load_fashion_mnist: {path!r} has idx magic number {magic:#x}; "
                         f"expected {0x0800 + ndim:#x} (unsigned bytes, {ndim}-D)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if dims != (count,) + item_shape:
        raise ValueError(f"load_fashion_mnist: {path!r} holds an array of shape {dims}; "
                         f"expected {(count,) + item_shape}")
    size = int(np.prod(dims))
    if len(raw) - head != size:
        raise ValueError(f"load_fashion_mnist: {path!r} has {len(raw) - head} data bytes; "
                         f"expected {size} for shape {dims} (truncated or corrupted)")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims).copy()


def _find(directory: str, name: str) -> str:
    for candidate in (name, name[:-3]):  # gzipped, or unpacked
        p = os.path.join(directory, candidate)
        if os.path.exists(p):
            return p
    raise DatasetNotFoundError(
        f"Fashion-MNIST not found: {os.path.join(directory, name)} does not exist. "
        f"Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or pass "
        f"path= to a directory holding the four idx files")


def load_fashion_mnist(path: str | os.PathLike | None = None):
    """Fashion-MNIST as ``(x_train, y_train), (x_test, y_test)``.

    Images are uint8 arrays ``(N, 28, 28)`` (0..255), labels int64 ``(N,)`` in
    0..9 (names in ``FASHION_MNIST_CLASSES``); N is 60,000 and 10,000. ``path``
    is a directory holding the idx files (``.gz`` or unpacked); by default
    Debian's ``/usr/share/datasets/fashion-mnist``. Raises
    ``DatasetNotFoundError`` (a ``FileNotFoundError``) saying how to install
    the package when absent, and ``ValueError`` when a file is corrupted.
    """
    directory = os.fspath(path) if path is not None else FASHION_MNIST_DIR
    out = []
    for split in ("train", "test"):
        images_name, labels_name, n = _FILES[split]
        x = _read_idx(_find(directory, images_name), 3, n, (28, 28))
        y = _read_idx(_find(directory, labels_name), 1, n, ()).astype(np.int64)
        if y.max(initial=0) > 9:
            raise ValueError(f"load_fashion_mnist: {split} labels go up to {y.max()}; "
                             f"expected 0..9")
        out.append((x, y))
    return tuple(out)
