"""Programs the distributed tests run under ``mpiexec -n R`` (and alone).

    python _mpi_worker.py equivalence   data-parallel fit == one process with batch R*b
    python _mpi_worker.py raise         rank 1 raises at step 3 (the job must end)
    python _mpi_worker.py threads       print rank, size, threads
    python _mpi_worker.py resume CKPT OUT [KILL_EPOCH KILL_BATCH]

Each prints "OK ..." on success (rank 0) and exits non-zero on failure.
"""
import hashlib
import json
import os
import signal
import sys

import numpy as np

import neuropil
from neuropil import callbacks, nn, optim
from neuropil import distributed as dist
from neuropil.checkpoint import BackupAndRestore


def digest(model, opt) -> str:
    h = hashlib.sha256()
    for _, p in model.named_parameters():
        h.update(p.data.tobytes())
    for i, s in sorted(opt.state_dict()["state"].items()):
        for k, v in sorted(s.items()):
            h.update(np.asarray(v).tobytes())
    return h.hexdigest()


class SameEverywhere(callbacks.Callback):
    """After every step: every rank holds bitwise the same parameters and optimizer state."""

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.steps = 0

    def on_batch_end(self, batch, logs=None):
        self.steps += 1
        d = dist.allgather_object(digest(self.model, self.opt))
        assert len(set(d)) == 1, f"ranks differ after step {self.steps}: {d}"


class Residual(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(n, n), nn.Linear(n, n)
        self.act, self.add = nn.ReLU(), nn.Add()

    def forward(self, x):
        return self.act(self.add(x, self.fc2(self.act(self.fc1(x)))))


def models(kind, rng):
    neuropil.manual_seed(7)
    if kind == "mlp":
        m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        x = rng.standard_normal((0, 6))
    elif kind == "cnn":
        m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 3 * 3, 3))
        x = rng.standard_normal((0, 1, 6, 6))
    elif kind == "lstm":
        m = nn.Sequential(nn.LSTM(3, 8), nn.LastStep(), nn.Linear(8, 3))
        x = rng.standard_normal((0, 5, 3))
    else:  # a graph model: backward derived from the recorded forward
        m = nn.Sequential(nn.Linear(6, 8), Residual(8), nn.Linear(8, 3))
        x = rng.standard_normal((0, 6))
    return m.double(), x.shape[1:]


def equivalence():
    R, r = dist.world_size(), dist.rank()
    b, steps = 4, 10
    # 9 full global steps and a short tenth: uneven shards (R=3: sizes 1, 1, 0)
    n = (steps - 1) * R * b + R - 1
    rng = np.random.default_rng(0)
    for kind in ("mlp", "cnn", "lstm", "graph"):
        for opt_name in ("sgd", "adam"):
            model, shape = models(kind, rng)
            x = np.random.default_rng(1).standard_normal((n,) + shape)
            y = np.random.default_rng(2).integers(0, 3, n)
            make = (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3)) \
                if opt_name == "sgd" else (lambda ps: optim.Adam(ps, lr=0.01))
            start = model.state_dict()
            opt = make(model.parameters())
            check = SameEverywhere(opt)
            hist = model.fit(x, y, loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=1,
                             batch_size=b, rng=5, verbose=0, callbacks=[check])
            assert check.steps == steps, (check.steps, steps)
            if r == 0:  # one process, batch R*b, same samples in the same steps
                ref, _ = models(kind, rng)
                ref.load_state_dict(start)
                ropt = make(ref.parameters())
                order = np.random.default_rng(5).permutation(n)
                loss, total = nn.CrossEntropyLoss(), 0.0
                for k in range(steps):
                    idx = order[k * R * b:(k + 1) * R * b]
                    ropt.zero_grad()
                    value = loss.forward(ref.forward(x[idx]), y[idx])
                    total += value * len(idx)
                    ref.backward(loss.backward())
                    ropt.step()
                for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
                    np.testing.assert_allclose(p.data, q.data, rtol=1e-9, atol=1e-11,
                                               err_msg=f"{kind}/{opt_name}: {name}")
                assert abs(hist.history["loss"][0] - total / n) < 1e-9, \
                    (hist.history["loss"], total / n)
    if r == 0:
        print(f"OK equivalence on {R} ranks")


def raise_at_step_3():
    class Boom(callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            if dist.rank() == 1 and batch == 3:
                raise RuntimeError("rank 1 fails at step 3 on purpose")

    neuropil.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = np.random.default_rng(0).standard_normal((400, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model.fit(x, y, loss="cross_entropy", optimizer=optim.SGD(model.parameters(), lr=0.1),
              epochs=50, batch_size=4, verbose=0, callbacks=[Boom()])
    print("NOT REACHED: training finished although rank 1 failed")


def threads():
    dist.init()
    lines = dist.allgather_object(
        f"rank {dist.rank()} of {dist.world_size()} local {dist.local_rank()} of "
        f"{dist.local_size()} threads {neuropil.get_num_threads()}")
    if dist.rank() == 0:  # one writer: lines of two processes may interleave
        print("\n".join(lines), flush=True)


class KillAt(callbacks.Callback):
    """SIGKILL this process (rank 0) at (epoch, batch): a crash nobody can handle."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = -1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at and dist.rank() == 0:
            os.kill(os.getpid(), signal.SIGKILL)


def resume(ckpt, out, kill=None):
    neuropil.manual_seed(3)
    x = np.random.default_rng(0).standard_normal((150, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    opt = optim.Adam(model.parameters(), lr=0.01)
    cbs = [callbacks.EarlyStopping(patience=5, restore_best_weights=True),
           callbacks.LRScheduler(optim.ReduceLROnPlateau(opt, patience=0, factor=0.5)),
           callbacks.CSVLogger(out + ".csv"),
           BackupAndRestore(ckpt, save_freq=2)]
    if kill is not None:
        cbs.insert(0, KillAt(*kill))
    hist = model.fit(x, y, loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=4, batch_size=8,
                     validation_split=0.2, verbose=0, callbacks=cbs)
    if dist.rank() == 0:
        model.save(out)
        with open(out + ".json", "w") as f:
            json.dump(hist.history, f)
        print("OK resume finished")


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "equivalence":
        equivalence()
    elif what == "raise":
        raise_at_step_3()
    elif what == "threads":
        threads()
    elif what == "resume":
        kill = (int(sys.argv[4]), int(sys.argv[5])) if len(sys.argv) > 5 else None
        resume(sys.argv[2], sys.argv[3], kill)
    else:
        raise SystemExit(f"unknown command {what!r}")
