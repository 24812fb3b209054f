"""Ctrl-C during fit, run in a subprocess by test_interrupt.py.

    python _interrupt_worker.py once|twice|external DIR
"""
import json
import os
import signal
import sys
import time

import numpy as np

import neuropil
from neuropil import callbacks, nn, optim
from neuropil.checkpoint import BackupAndRestore


class SigintAt(callbacks.Callback):
    """Send this process `count` SIGINTs after batch `batch` of epoch `epoch`."""

    def __init__(self, epoch, batch, count):
        super().__init__()
        self.at, self.count, self.epoch = (epoch, batch), count, -1
        self.batches_after = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            for _ in range(self.count):
                os.kill(os.getpid(), signal.SIGINT)
        elif (self.epoch, batch) > self.at:
            self.batches_after += 1


class Ready(callbacks.Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_batch_end(self, batch, logs=None):
        if not os.path.exists(self.path):
            open(self.path, "w").close()
        time.sleep(0.01)  # a slow step, so that the signal lands mid-training


def main(mode, out):
    neuropil.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((200, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    stop = callbacks.EarlyStopping(monitor="loss", patience=100, restore_best_weights=True)
    csv = callbacks.CSVLogger(os.path.join(out, "log.csv"))
    backup = BackupAndRestore(os.path.join(out, "run.ckpt"))
    cbs = [stop, csv, backup]
    if mode == "external":
        cbs.append(Ready(os.path.join(out, "ready")))
        epochs = 10_000
    else:
        spy = SigintAt(2, 3, 1 if mode == "once" else 2)
        cbs.append(spy)
        epochs = 20
    before = signal.getsignal(signal.SIGINT)
    opt = optim.SGD(model.parameters(), lr=0.05)
    result = {}
    try:
        hist = model.fit(x, y, loss="cross_entropy", optimizer=opt, epochs=epochs,
                         batch_size=10, verbose=0, callbacks=cbs)
        result["returned"] = True
        result["interrupted"] = hist.interrupted
        result["epochs_logged"] = len(hist.epoch)
    except KeyboardInterrupt:
        result["returned"] = False
    if mode != "external":
        result["batches_after_signal"] = spy.batches_after
    result["handler_restored"] = signal.getsignal(signal.SIGINT) is before
    result["csv_closed"] = csv._file is None
    result["csv_rows"] = len(open(os.path.join(out, "log.csv")).read().splitlines()) - 1
    result["best_restored"] = stop.best_weights is not None and all(
        np.array_equal(v, stop.best_weights[k]) for k, v in model.state_dict().items())
    result["checkpoint_kept"] = os.path.exists(os.path.join(out, "run.ckpt"))
    result["model_usable"] = bool(np.isfinite(model.predict(x)).all())
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
