"""fit / evaluate / predict, callbacks and History on small reference models."""
import csv
import io
import math
import os

import numpy as np
import pytest

import neuropil
from neuropil import callbacks as C
from neuropil import nn, optim
from neuropil.training import DivergenceError

from _tiny_models import TinyCE, TinyLinear, TinyMSE, blobs, mlp


def train(seed=0, epochs=5, **kw):
    neuropil.manual_seed(seed)
    model = mlp()
    x, y = blobs()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    hist = model.fit(x, y, loss=TinyCE(), optimizer=opt, epochs=epochs, batch_size=16,
                     verbose=0, **kw)
    return model, hist


def test_fit_converges_and_history():
    model, hist = train(validation_split=0.25, epochs=8)
    h = hist.history
    assert set(h) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 8 for v in h.values()) and hist.epoch == list(range(8))
    assert h["loss"][-1] < 0.3 * h["loss"][0]
    assert h["val_accuracy"][-1] >= 0.95
    x, y = blobs()
    res = model.evaluate(x, y, loss=TinyCE())
    assert res["accuracy"] >= 0.95 and set(res) == {"loss", "accuracy"}


def test_evaluate_matches_full_batch_computation():
    model, _ = train(epochs=1)
    x, y = blobs()
    res = model.evaluate(x, y, loss=TinyCE(), batch_size=7)
    model.eval()
    logits = model(x)
    full = TinyCE().forward(logits, y)
    assert res["loss"] == pytest.approx(full, rel=1e-5)
    assert res["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y))
    assert model.training is False  # evaluate restores the mode it found
    model.train()
    model.evaluate(x, y, loss=TinyCE())
    assert model.training is True


def test_predict_batches_into_one_array():
    model, _ = train(epochs=1)
    x, _ = blobs()
    out = model.predict(x, batch_size=7)
    model.eval()
    np.testing.assert_allclose(out, model(x), rtol=1e-6)
    assert out.shape == (len(x), 3) and out.dtype == np.float32


def test_same_seed_bitwise_identical():
    m1, h1 = train(seed=3, validation_split=0.2)
    m2, h2 = train(seed=3, validation_split=0.2)
    assert h1.history == h2.history
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    m3, h3 = train(seed=4, validation_split=0.2)
    assert h3.history != h1.history


def test_bitwise_identical_with_1_and_2_threads(threads):
    runs = []
    for n in (1, 2):
        neuropil.set_num_threads(n)
        runs.append(train(seed=5, validation_split=0.2))
    (m1, h1), (m2, h2) = runs
    assert h1.history == h2.history
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_minibatches_are_a_permutation_each_epoch():
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append(x[:, 0].copy())
            return np.zeros((len(x), 2), np.float32)

        def backward(self, dy):
            return dy

    class ZeroLoss:
        def forward(self, p, t):
            return 0.0

        def backward(self):
            return np.zeros((1, 2), np.float32)

    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.zeros(10, np.int64)
    model = Spy()
    opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1)
    model.fit(x, y, loss=ZeroLoss(), optimizer=opt, epochs=3, batch_size=4, verbose=0, rng=0)
    assert [len(b) for b in seen] == [4, 4, 2] * 3
    epochs = [np.concatenate(seen[i:i + 3]) for i in range(0, 9, 3)]
    for e in epochs:
        assert sorted(e) == list(range(10))
    assert not np.array_equal(epochs[0], epochs[1])
    seen.clear()
    model.fit(x, y, loss=ZeroLoss(), optimizer=opt, epochs=1, batch_size=4, shuffle=False,
              verbose=0)
    assert np.array_equal(np.concatenate(seen), np.arange(10))
    # validation_split takes the last samples, before shuffling
    seen.clear()
    model.fit(x, y, loss=ZeroLoss(), optimizer=opt, epochs=1, batch_size=4,
              validation_split=0.3, verbose=0, metrics=())
    assert sorted(np.concatenate(seen[:2])) == list(range(7))
    assert np.array_equal(np.concatenate(seen[2:]), [7, 8, 9])


def test_hand_written_loop_works():
    neuropil.manual_seed(0)
    model = mlp()
    x, y = blobs()
    loss = TinyCE()
    opt = optim.Adam(model.parameters(), lr=0.01)
    first = None
    for _ in range(30):
        opt.zero_grad()
        value = loss.forward(model(x), y)
        first = first if first is not None else value
        model.backward(loss.backward())
        opt.step()
    assert value < 0.3 * first


def test_regression_targets_get_no_default_accuracy():
    neuropil.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3
    model = nn.Sequential(TinyLinear(3, 1))
    hist = model.fit(x, y, loss=TinyMSE(), optimizer=optim.SGD(model.parameters(), lr=0.1),
                     epochs=30, batch_size=8, verbose=0)
    assert list(hist.history) == ["loss"]
    assert hist.history["loss"][-1] < 1e-4
    with pytest.raises(ValueError, match="metrics=()"):
        model.fit(x, y * 10, loss=TinyMSE(), optimizer=optim.SGD(model.parameters(), lr=0.1),
                  metrics=("accuracy",), verbose=0)


# -- callbacks ---------------------------------------------------------------------

class Recorder(C.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_batch_end(self, batch, logs=None):
        self.calls.append(f"batch_end {batch}")
        assert set(logs) == {"batch", "size", "loss"}

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_callback_hooks_order_and_logs():
    rec = Recorder()
    train(epochs=2, callbacks=[rec], validation_data=blobs(n=30, seed=1))
    steps = 240 // 16
    keys = ["accuracy", "loss", "val_accuracy", "val_loss"]
    expected = ["train_begin"]
    for e in range(2):
        expected += [f"epoch_begin {e}"] + [f"batch_end {b}" for b in range(steps)]
        expected += [f"epoch_end {e} {keys}"]
    assert rec.calls == expected + ["train_end"]
    assert rec.model is not None and rec.optimizer is not None
    assert rec.params["steps"] == steps and rec.params["epochs"] == 2


def test_stop_training_from_a_callback():
    class StopAt(C.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    _, hist = train(epochs=5, callbacks=[StopAt()])
    assert len(hist.epoch) == 1


class ScriptedLoss(C.Callback):
    """Overrides the monitored value with a script, to test the stopping rules exactly."""

    def __init__(self, values, key="val_loss"):
        super().__init__()
        self.values, self.key = values, key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


def test_early_stopping_keras_semantics():
    values = [1.0, 0.8, 0.85, 0.81, 0.9, 0.7, 0.6]
    es = C.EarlyStopping(patience=2)
    _, hist = train(epochs=7, callbacks=[ScriptedLoss(values), es])
    # best 0.8 at epoch 1; epochs 2 and 3 do not improve -> stops after epoch 3
    assert hist.epoch == [0, 1, 2, 3] and es.stopped_epoch == 3 and es.best_epoch == 1
    es = C.EarlyStopping(patience=2, min_delta=0.25)
    _, hist = train(epochs=7, callbacks=[ScriptedLoss(values), es])
    # 0.8 is not an improvement of 0.25 over 1.0
    assert hist.epoch == [0, 1, 2] and es.best == 1.0
    es = C.EarlyStopping(monitor="val_acc", patience=0)
    assert es.mode == "max"
    _, hist = train(epochs=7, callbacks=[ScriptedLoss([0.5, 0.6, 0.6, 0.7], "val_acc"), es])
    assert hist.epoch == [0, 1, 2]


def test_early_stopping_restores_best_weights():
    snapshots = {}

    class Snap(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots[epoch] = self.model.state_dict()

    values = [1.0, 0.5, 0.7, 0.8, 0.9]
    es = C.EarlyStopping(patience=2, restore_best_weights=True)
    model, hist = train(epochs=5, callbacks=[ScriptedLoss(values), Snap(), es])
    assert es.stopped_epoch == 3 and es.best_epoch == 1
    final = model.state_dict()
    for k in final:
        np.testing.assert_array_equal(final[k], snapshots[1][k])
        assert not np.array_equal(final[k], snapshots[3][k])


def test_early_stopping_missing_monitor_warns():
    with pytest.warns(RuntimeWarning, match="val_loss"):
        _, hist = train(epochs=2, callbacks=[C.EarlyStopping()])
    assert len(hist.epoch) == 2


def test_model_checkpoint_best_only(tmp_path):
    path = tmp_path / "best.safetensors"
    values = [1.0, 0.5, 0.7, 0.4, 0.9]
    saved = []

    class Watch(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if path.exists():
                saved.append(neuropil.io.load_metadata(path)["epoch"])

    ck = C.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    model, _ = train(epochs=5, callbacks=[ScriptedLoss(values), ck, Watch()])
    assert saved == ["1", "2", "2", "4", "4"] and ck.best == 0.4
    assert os.listdir(tmp_path) == ["best.safetensors"]  # no temporary files left
    fresh = mlp()
    fresh.load(path)  # loads into the same architecture


def test_model_checkpoint_every_epoch_with_pattern(tmp_path):
    ck = C.ModelCheckpoint(tmp_path / "w-{epoch:02d}-{loss:.2f}.safetensors")
    _, hist = train(epochs=3, callbacks=[ck])
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 3 and files[0].startswith("w-01-")
    with pytest.raises(KeyError, match="nope"):
        train(epochs=1, callbacks=[C.ModelCheckpoint(tmp_path / "{nope}.safetensors")])


def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    _, hist = train(epochs=3, validation_split=0.2, callbacks=[C.CSVLogger(path)])
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    np.testing.assert_allclose([float(r["val_loss"]) for r in rows],
                               hist.history["val_loss"], rtol=1e-12)
    train(epochs=2, validation_split=0.2, callbacks=[C.CSVLogger(path, append=True)])
    lines = open(path).read().splitlines()
    assert len(lines) == 1 + 3 + 2 and lines.count(lines[0]) == 1


def test_lr_scheduler_callbacks():
    neuropil.manual_seed(0)
    model = mlp()
    x, y = blobs()
    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    hist = model.fit(x, y, loss=TinyCE(), optimizer=opt, epochs=5, verbose=0,
                     callbacks=[C.LRScheduler(sched)])
    assert hist.history["lr"] == [0.1, 0.1, 0.05, 0.05, 0.025]
    opt2 = optim.SGD(model.parameters(), lr=1.0)
    plateau = optim.ReduceLROnPlateau(opt2, patience=0, factor=0.5)
    model.fit(x, y, loss=TinyCE(), optimizer=opt2, epochs=3, verbose=0,
              callbacks=[ScriptedLoss([1.0, 1.0, 1.0]), C.LRScheduler(plateau)])
    assert opt2.lr == 0.25
    opt3 = optim.SGD(model.parameters(), lr=1.0)
    hist = model.fit(x, y, loss=TinyCE(), optimizer=opt3, epochs=3, verbose=0,
                     callbacks=[C.LearningRateScheduler(lambda e, lr: 0.1 / (e + 1))])
    assert hist.history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib")
    _, hist = train(epochs=2, validation_split=0.2)
    hist.plot(tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="nothing recorded"):
        hist.plot(tmp_path / "x.png", metrics=["bogus"])


def test_history_plot_without_matplotlib(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_mpl(name, *args, **kw):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kw)

    _, hist = train(epochs=1)
    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        hist.plot(tmp_path / "h.png")


# -- verbosity -------------------------------------------------------------------

def test_verbose_0_prints_nothing(capsys):
    train(epochs=2, validation_split=0.2)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


@pytest.mark.parametrize("verbose", [1, 2])
def test_verbose_prints_progress(capsys, verbose):
    neuropil.manual_seed(0)
    model = mlp()
    x, y = blobs()
    model.fit(x, y, loss=TinyCE(), optimizer=optim.SGD(model.parameters(), lr=0.1),
              epochs=2, verbose=verbose, validation_split=0.2)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Epoch 1/2" in text and "Epoch 2/2" in text and "val_loss" in text


def test_plain_progress_line_without_tqdm():
    buf = io.StringIO()
    bar = C.ProgressBar(verbose=1, stream=buf)
    bar._tqdm = None
    bar.set_params({"epochs": 1, "steps": 3})
    bar.on_epoch_begin(0)
    bar.on_batch_end(0, {"loss": 1.5})
    bar.on_epoch_end(0, {"loss": 1.25})
    text = buf.getvalue()
    assert "Epoch 1/1 1/3 - loss: 1.5" in text and text.endswith("loss: 1.25\n")


# -- errors ----------------------------------------------------------------------

def fit_args(model=None):
    model = model or mlp()
    return model, dict(loss=TinyCE(), optimizer=optim.SGD(model.parameters(), lr=0.1), verbose=0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_is_reported():
    model, kw = fit_args()
    kw["optimizer"] = optim.SGD(model.parameters(), lr=1e6)
    x, y = blobs()
    log = C.CSVLogger(os.devnull)
    with pytest.raises(DivergenceError, match=r"epoch \d+, batch \d+") as err:
        model.fit(x * 1e3, y, epochs=5, batch_size=16, callbacks=[log], **kw)
    assert isinstance(err.value, FloatingPointError) and isinstance(err.value, ValueError)
    assert log._file is None  # callbacks were given the chance to close their files


@pytest.mark.parametrize("make, exc, match", [
    (lambda x, y: (x, y[:-1]), ValueError, "x has 240 samples but y has 239"),
    (lambda x, y: (x[:0], y[:0]), ValueError, "x is empty"),
    (lambda x, y: (x[:, :3], y), ValueError, r"first layer, layer '0' \(TinyLinear.*expects \(N, 4\)"),
    (lambda x, y: (x, y + 1), ValueError, "labels from 1 to 3 .* 0..2"),
    (lambda x, y: (x, y - 1), ValueError, "labels from -1"),
    (lambda x, y: (np.where(x > 5, np.nan, x), y), ValueError, "x contains NaN"),
    (lambda x, y: (x, None), TypeError, "y must be"),
    (lambda x, y: (x, y.astype(str)), TypeError, "y must hold"),
])
def test_bad_data(make, exc, match):
    model, kw = fit_args()
    x, y = blobs()
    xb, yb = make(x, y)
    with pytest.raises(exc, match=match):
        model.fit(xb, yb, **kw)


@pytest.mark.parametrize("extra, match", [
    (dict(epochs=-1), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(validation_split=1.0), "validation_split"),
    (dict(validation_split=0.999), "empty training or validation"),
    (dict(validation_data=(np.zeros((3, 4)),)), "validation_data"),
    (dict(validation_data=(np.zeros((3, 4)), np.zeros(2, int))), r"validation_data\[1\] has 2"),
    (dict(validation_data=(np.zeros((3, 4)), np.full(3, 7))), "validation labels"),
    (dict(metrics=("f1_macro",)), "unknown metric"),
    (dict(callbacks=[object()]), "callbacks"),
    (dict(loss="hinge"), "loss"),
    (dict(optimizer="rmsprop"), "optimizer"),
])
def test_bad_arguments(extra, match):
    model, kw = fit_args()
    kw.update(extra)
    x, y = blobs()
    with pytest.raises((ValueError, TypeError), match=match):
        model.fit(x, y, **kw)


def test_evaluate_and_predict_check_features():
    model, _ = fit_args()
    x, y = blobs()
    with pytest.raises(ValueError, match=r"expects \(N, 4\)"):
        model.predict(x[:, :2])
    with pytest.raises(ValueError, match="labels"):
        model.evaluate(x, y + 5, loss=TinyCE())


def test_fit_on_float64_model_converts_inputs_once():
    neuropil.manual_seed(0)
    model = mlp().double()
    x, y = blobs()
    hist = model.fit(x, y, loss=TinyCE(), optimizer=optim.SGD(model.parameters(), lr=0.1),
                     epochs=2, verbose=0)
    assert model.predict(x).dtype == np.float64 and math.isfinite(hist.history["loss"][-1])


# -- with the real layers and losses ---------------------------------------------

def real_mlp():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def fit_real(seed, **kw):
    neuropil.manual_seed(seed)
    model = real_mlp()
    x, y = blobs()
    opt = optim.Adam(model.parameters(), lr=0.01)
    hist = model.fit(x, y, loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=4, batch_size=16,
                     validation_split=0.2, verbose=0, **kw)
    return model, hist


def test_real_layers_converge_and_are_reproducible_across_threads(threads):
    runs = []
    for n in (1, 2, 1):
        neuropil.set_num_threads(n)
        runs.append(fit_real(7))
    (m1, h1), (m2, h2), (m3, h3) = runs
    assert h1.history == h2.history == h3.history
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert h1.history["val_accuracy"][-1] >= 0.9
    assert h1.history["loss"][-1] < h1.history["loss"][0]


def test_real_layers_checkpoint_round_trip(tmp_path):
    model, _ = fit_real(1, callbacks=[C.ModelCheckpoint(tmp_path / "m.safetensors")])
    fresh = real_mlp().load(tmp_path / "m.safetensors")
    x, _ = blobs(n=20, seed=3)
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
    assert set(neuropil.load(tmp_path / "m.safetensors")) == {"0.weight", "0.bias", "3.weight",
                                                              "3.bias"}


def test_feature_count_error_names_layer_after_flatten():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = np.zeros((5, 2, 5), np.float32)
    with pytest.raises(ValueError, match=r"first layer, layer '1' .*12 values per sample"):
        model.fit(x, np.zeros(5, np.int64), loss=nn.CrossEntropyLoss(),
                  optimizer=optim.SGD(model.parameters(), lr=0.1), verbose=0)


def test_loss_names_and_optimizer_names():
    neuropil.manual_seed(0)
    model = real_mlp()
    x, y = blobs()
    hist = model.fit(x, y, loss="cross_entropy", optimizer="adam", epochs=2, verbose=0)
    assert len(hist.history["loss"]) == 2


def test_one_hot_and_binary_targets():
    neuropil.manual_seed(0)
    x, y = blobs()
    model = real_mlp()
    onehot = np.eye(3, dtype=np.float32)[y]
    hist = model.fit(x, onehot, loss=nn.CrossEntropyLoss(), epochs=8, verbose=0,
                     optimizer=optim.Adam(model.parameters(), lr=0.01))
    assert hist.history["accuracy"][-1] > 0.9
    assert model.evaluate(x, onehot, loss=nn.CrossEntropyLoss())["accuracy"] > 0.9
    binary = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    yb = (y == 0).astype(np.float32)[:, None]
    hist = binary.fit(x, yb, loss=nn.BCEWithLogitsLoss(), epochs=8, verbose=0,
                      optimizer=optim.Adam(binary.parameters(), lr=0.01))
    assert hist.history["accuracy"][-1] > 0.9
