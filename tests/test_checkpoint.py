"""Training checkpoints: the file format, and resuming in-process (the SIGKILL
cases run in subprocesses in test_distributed.py)."""
import math
import os

import numpy as np
import pytest

import neuropil
from neuropil import callbacks, nn, optim
from neuropil.checkpoint import BackupAndRestore, load_checkpoint, save_checkpoint

from _tiny_models import blobs


def test_state_tree_round_trip(tmp_path):
    state = {"epoch": 3, "best": math.inf, "worst": -math.inf, "lr": 0.1, "name": "x",
             "flag": True, "none": None, "betas": (0.9, 0.999),
             "state": {0: {"step": 7, "exp_avg": np.arange(6, dtype=np.float32).reshape(2, 3)}},
             "rng": np.random.default_rng(5).bit_generator.state,
             "nested": [{"a": np.float64(2.5)}, [np.int64(4), np.zeros((0, 2))]]}
    path = tmp_path / "s.ckpt"
    save_checkpoint(path, state)
    back = load_checkpoint(path)
    assert back["epoch"] == 3 and back["best"] == math.inf and back["worst"] == -math.inf
    assert back["betas"] == (0.9, 0.999) and back["flag"] is True and back["none"] is None
    assert back["state"][0]["step"] == 7 and list(back["state"]) == [0]
    np.testing.assert_array_equal(back["state"][0]["exp_avg"], state["state"][0]["exp_avg"])
    assert back["state"][0]["exp_avg"].dtype == np.float32
    assert back["rng"] == state["rng"]
    assert back["nested"][0]["a"] == 2.5 and back["nested"][1][0] == 4
    assert back["nested"][1][1].shape == (0, 2)
    # the arrays are plain safetensors, readable by anyone
    assert "state/state/0/exp_avg" in neuropil.load(path)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(TypeError, match="cannot store"):
        save_checkpoint(tmp_path / "bad.ckpt", {"f": object()})
    m = nn.Linear(2, 2)
    m.save(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="not a neuropil training checkpoint"):
        load_checkpoint(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="save_freq"):
        BackupAndRestore(tmp_path / "c", save_freq=0)


class CrashAt(callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), -1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("crash")


def train(tmp_path, tag, crash=None, **kw):
    neuropil.manual_seed(1)
    x, y = blobs(n=123)
    model = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Dropout(0.3), nn.Linear(12, 3))
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    cbs = [callbacks.LRScheduler(optim.StepLR(opt, step_size=1, gamma=0.7)),
           callbacks.EarlyStopping(monitor="val_loss", patience=10),
           BackupAndRestore(tmp_path / f"{tag}.ckpt", save_freq=3)]
    if crash:
        cbs.append(CrashAt(*crash))
    hist = model.fit(x, y, loss="cross_entropy", optimizer=opt, epochs=4, batch_size=8,
                     validation_split=0.25, verbose=0, callbacks=cbs, **kw)
    return model, opt, hist, cbs


def test_resume_in_process_is_bitwise(tmp_path):
    ref, ropt, rhist, _ = train(tmp_path, "ref")
    assert not os.path.exists(tmp_path / "ref.ckpt")
    with pytest.raises(RuntimeError, match="crash"):
        train(tmp_path, "run", crash=(2, 7))
    state = load_checkpoint(tmp_path / "run.ckpt")
    assert (state["epoch"], state["batch"]) == (2, 6)  # after batch index 5
    assert state["callbacks"][0]["class"] == "LRScheduler#0"
    model, opt, hist, cbs = train(tmp_path, "run")
    for (k, a), (_, b) in zip(ref.named_parameters(), model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=k)
    assert rhist.history == hist.history and rhist.epoch == hist.epoch
    assert opt.lr == ropt.lr and cbs[1].best == pytest.approx(min(hist.history["val_loss"]))
    for p, q in zip(ref.parameters(), model.parameters()):
        np.testing.assert_array_equal(ropt.state[p]["momentum_buffer"],
                                      opt.state[q]["momentum_buffer"])


def test_resume_from_explicit_path_and_mismatches(tmp_path):
    with pytest.raises(RuntimeError, match="crash"):
        train(tmp_path, "run", crash=(1, 4))
    saved = tmp_path / "saved.ckpt"
    os.replace(tmp_path / "run.ckpt", saved)
    ref, _, rhist, _ = train(tmp_path, "ref")
    model, _, hist, _ = train(tmp_path, "other", resume_from=saved)
    for a, b in zip(ref.parameters(), model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert rhist.history == hist.history
    x, y = blobs(n=123)
    m = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Dropout(0.3), nn.Linear(12, 3))
    with pytest.raises(ValueError, match="batch_size=8"):
        m.fit(x, y, loss="cross_entropy", optimizer=optim.SGD(m.parameters(), lr=0.1),
              batch_size=16, validation_split=0.25, verbose=0, resume_from=saved)
