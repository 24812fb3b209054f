"""fit, evaluate and predict on memory-mapped arrays (never read whole) and on
iterables of batches, read one batch ahead by a background thread."""
import threading

import numpy as np
import pytest

import neuropil
from neuropil import nn, optim
from neuropil.training.data import Prefetcher

from _tiny_models import blobs


def model_and_opt(seed=0):
    neuropil.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))
    return model, optim.Adam(model.parameters(), lr=0.01)


class RowLog:
    """An array-like that records which rows are read: stands in for data on disk."""

    def __init__(self, arr):
        self.arr = arr
        self.shape, self.dtype = arr.shape, arr.dtype
        self.reads = []

    def __len__(self):
        return len(self.arr)

    def __getitem__(self, key):
        rows = np.arange(len(self.arr))[key]
        self.reads.append(np.atleast_1d(rows))
        return self.arr[key]


def weights(model):
    return [p.data.copy() for p in model.parameters()]


def test_memmap_fit_is_bitwise_the_in_memory_fit(tmp_path):
    x, y = blobs(n=203)
    np.save(tmp_path / "x.npy", x.astype(np.float64))  # converted per batch
    np.save(tmp_path / "y.npy", y)
    xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    ym = np.load(tmp_path / "y.npy", mmap_mode="r")
    runs = []
    for xs, ys in ((x.astype(np.float64), y), (xm, ym)):
        model, opt = model_and_opt()
        hist = model.fit(xs, ys, loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=3,
                         batch_size=16, validation_split=0.2, verbose=0, rng=1)
        runs.append((weights(model), hist.history, model.evaluate(xs, ys, loss="cross_entropy"),
                     model.predict(xs)))
    (wa, ha, ea, pa), (wb, hb, eb, pb) = runs
    for a, b in zip(wa, wb):
        np.testing.assert_array_equal(a, b)
    assert ha == hb and ea == eb
    np.testing.assert_array_equal(pa, pb)


def test_lazy_input_is_read_a_batch_at_a_time():
    x, y = blobs(n=100)
    lazy = RowLog(x)
    model, opt = model_and_opt()
    model.fit(lazy, y, loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=2, batch_size=8,
              verbose=0, metrics=())
    sizes = [len(r) for r in lazy.reads]
    assert max(sizes) <= 8 and sum(sizes) == 200  # every sample once per epoch, no more
    for r in lazy.reads:  # rows of a batch are read in increasing (file) order
        assert np.all(np.diff(r) > 0)
    lazy.reads.clear()
    model.predict(lazy, batch_size=32)
    assert max(len(r) for r in lazy.reads) <= 32 and sum(len(r) for r in lazy.reads) == 100


def test_nan_in_a_memmap_batch_is_reported(tmp_path):
    x, y = blobs(n=64)
    x[37, 2] = np.nan
    np.save(tmp_path / "x.npy", x)
    xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    model, opt = model_and_opt()
    with pytest.raises(ValueError, match="x contains NaN"):
        model.fit(xm, y, loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=1, batch_size=8,
                  verbose=0)


def batches(x, y, b):
    for lo in range(0, len(x), b):
        yield x[lo:lo + b], y[lo:lo + b]


class Loader:
    """A re-iterable source: a fresh pass each epoch (as a DataLoader is)."""

    def __init__(self, x, y, b):
        self.x, self.y, self.b = x, y, b

    def __iter__(self):
        return batches(self.x, self.y, self.b)


def test_iterable_fit_matches_unshuffled_arrays():
    x, y = blobs(n=90)
    model, opt = model_and_opt()
    ha = model.fit(x, y, loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=3, batch_size=16,
                   shuffle=False, verbose=0, rng=2)
    wa = weights(model)
    model, opt = model_and_opt()
    hb = model.fit(Loader(x, y, 16), loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=3,
                   verbose=0, rng=2)
    for a, b in zip(wa, weights(model)):
        np.testing.assert_array_equal(a, b)
    assert ha.history == hb.history
    assert model.evaluate(Loader(x, y, 7), loss="cross_entropy") == \
        pytest.approx(model.evaluate(x, y, loss="cross_entropy"), rel=1e-6)
    np.testing.assert_allclose(model.predict(batches(x, y, 32)), model.predict(x), rtol=1e-6)


def test_generator_with_steps_per_epoch_and_running_out():
    x, y = blobs(n=64)
    model, opt = model_and_opt()
    hist = model.fit(batches(np.tile(x, (3, 1)), np.tile(y, 3), 16), loss="cross_entropy",
                     optimizer=opt, epochs=3, steps_per_epoch=4, verbose=0)
    assert len(hist.epoch) == 3
    with pytest.warns(RuntimeWarning, match="ran out of data"):
        hist = model.fit(batches(x, y, 16), loss="cross_entropy", optimizer=opt, epochs=3,
                         verbose=0)
    assert len(hist.epoch) == 1


def test_generator_batches_are_copied_before_use():
    """A generator may reuse its own array: the batch in flight must not change."""
    x, y = blobs(n=48)

    def reusing():
        buf = np.empty((8, 4), np.float32)
        for lo in range(0, 48, 8):
            buf[:] = x[lo:lo + 8]
            yield buf, y[lo:lo + 8]

    model, opt = model_and_opt()
    ha = model.fit(reusing(), loss="cross_entropy", optimizer=opt, epochs=1, verbose=0,
                   metrics=())
    wa = weights(model)
    model, opt = model_and_opt()
    hb = model.fit(x, y, loss="cross_entropy", optimizer=opt, epochs=1, batch_size=8,
                   shuffle=False, verbose=0, metrics=())
    for a, b in zip(wa, weights(model)):
        np.testing.assert_array_equal(a, b)
    assert ha.history == hb.history


@pytest.mark.parametrize("bad, match", [
    (lambda x, y: iter([x[:4]]), "pair"),
    (lambda x, y: iter([(x[:4], y[:3])]), "same length"),
    (lambda x, y: iter([(np.zeros((0, 4)), y[:0])]), "batch >= 1"),
    (lambda x, y: iter([(x[:4].astype(str), y[:4])]), "numeric"),
])
def test_bad_batches_are_named(bad, match):
    x, y = blobs(n=16)
    model, opt = model_and_opt()
    with pytest.raises((TypeError, ValueError), match=match):
        model.fit(bad(x, y), loss="cross_entropy", optimizer=opt, verbose=0)


def test_iterable_rejects_y_and_validation_split():
    x, y = blobs(n=16)
    model, opt = model_and_opt()
    with pytest.raises(ValueError, match="y must be None"):
        model.fit(batches(x, y, 4), y, loss="cross_entropy", optimizer=opt, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(batches(x, y, 4), loss="cross_entropy", optimizer=opt, verbose=0,
                  validation_split=0.2)


def test_prefetcher_stays_one_ahead_and_reports_errors():
    produced, consumed = [], []
    gate = threading.Event()

    def produce(i, slot):
        produced.append(i)
        if i == 5:
            raise KeyError("boom at 5")
        return i

    pf = Prefetcher(produce, None)
    try:
        for _ in range(3):
            consumed.append(pf.next())
        gate.wait(0.2)
        # item 2 is held by the consumer; at most one more is ready (two slots)
        assert consumed == [0, 1, 2] and max(produced) <= 3
        assert pf.next() == 3 and pf.next() == 4
        with pytest.raises(KeyError, match="boom"):
            pf.next()
        assert pf.next() is None
    finally:
        pf.close()
    pf = Prefetcher(lambda i, slot: None if i == 2 else i, None)
    assert [pf.next(), pf.next(), pf.next(), pf.next()] == [0, 1, None, None]
    pf.close()


def test_iterable_validation_data_and_bad_pairs():
    x, y = blobs(n=64)
    model, opt = model_and_opt()
    hist = model.fit(x, y, loss="cross_entropy", optimizer=opt, epochs=2, verbose=0,
                     validation_data=Loader(x[:20], y[:20], 6))
    ref = model.evaluate(x[:20], y[:20], loss="cross_entropy")
    assert hist.history["val_loss"][-1] == pytest.approx(ref["loss"], rel=1e-6)
    with pytest.raises(ValueError, match="validation_data must be a pair"):
        model.fit(x, y, loss="cross_entropy", optimizer=opt, verbose=0,
                  validation_data=(x, y, y))
