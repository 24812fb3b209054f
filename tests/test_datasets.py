"""Fashion-MNIST loader: the real files when installed, synthetic idx files otherwise."""
import gzip
import os

import numpy as np
import pytest

from neuropil import datasets

INSTALLED = os.path.exists(os.path.join(datasets.FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz"))


@pytest.mark.skipif(not INSTALLED, reason="dataset-fashion-mnist is not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist():
    (xtr, ytr), (xte, yte) = datasets.load_fashion_mnist()
    assert xtr.shape == (60000, 28, 28) and xtr.dtype == np.uint8
    assert xte.shape == (10000, 28, 28) and yte.dtype == np.int64
    assert np.array_equal(np.bincount(ytr), np.full(10, 6000))
    assert np.array_equal(np.bincount(yte), np.full(10, 1000))
    assert 0 < xtr.mean() < 255


def _write_idx(path, arr, magic=None, gz=True):
    ndim = arr.ndim
    head = (magic if magic is not None else 0x0800 + ndim).to_bytes(4, "big")
    head += b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = head + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.fixture(autouse=True)
def small_counts(monkeypatch, request):
    """Synthetic files hold 600 + 100 images instead of 60,000 + 10,000 (fast tests)."""
    if request.node.name != "test_real_fashion_mnist":
        files = {k: v[:2] + (N[k],) for k, v in datasets._FILES.items()}
        monkeypatch.setattr(datasets, "_FILES", files)


N = {"train": 600, "test": 100}


def _fake_dir(tmp_path, gz=True, **overrides):
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (N["train"], 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, N["train"]),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (N["test"], 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, N["test"]),
    }
    for name, arr in files.items():
        arr, magic = overrides.get(name, (arr, None))
        _write_idx(tmp_path / (name + sfx), arr, magic, gz)
    return files


@pytest.mark.parametrize("gz", [True, False])
def test_synthetic_files_round_trip(tmp_path, gz):
    files = _fake_dir(tmp_path, gz=gz)
    (xtr, ytr), (xte, yte) = datasets.load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(xte, files["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(ytr, files["train-labels-idx1-ubyte"])
    assert ytr.dtype == np.int64 and xtr.dtype == np.uint8


def test_missing_dataset_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        datasets.load_fashion_mnist(tmp_path)


@pytest.mark.parametrize("override, match", [
    ({"t10k-labels-idx1-ubyte": (np.zeros(100), 0x0803)}, "magic"),
    ({"t10k-labels-idx1-ubyte": (np.zeros(99), None)}, "shape"),
    ({"t10k-labels-idx1-ubyte": (np.full(100, 12), None)}, "labels"),
])
def test_corrupted_idx_files(tmp_path, override, match):
    _fake_dir(tmp_path, gz=False, **override)
    with pytest.raises(ValueError, match=match):
        datasets.load_fashion_mnist(tmp_path)


def test_truncated_idx_file(tmp_path):
    _fake_dir(tmp_path, gz=False)
    p = tmp_path / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        datasets.load_fashion_mnist(tmp_path)


def test_truncated_gzip_file(tmp_path):
    _fake_dir(tmp_path, gz=True)
    p = tmp_path / "train-labels-idx1-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(ValueError, match="cannot read"):
        datasets.load_fashion_mnist(tmp_path)
