"""Ctrl-C (SIGINT) during fit, in a subprocess: the first stops after the current
batch with every end hook run (CSV closed, best weights restored, a checkpoint to
resume from), a second stops at once; the previous handler is restored."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

import neuropil
from neuropil import nn, optim

WORKER = pathlib.Path(__file__).resolve().parent / "_interrupt_worker.py"


def run(mode, tmp_path, **kw):
    return subprocess.run([sys.executable, str(WORKER), mode, str(tmp_path)],
                          capture_output=True, text=True, timeout=60, **kw)


def result_of(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_first_ctrl_c_stops_after_the_batch(tmp_path):
    proc = run("once", tmp_path)
    r = result_of(proc)
    assert r["returned"] and r["interrupted"]
    assert r["batches_after_signal"] == 0          # stopped right after that batch
    assert r["epochs_logged"] == 2                 # the interrupted epoch is not logged
    assert r["csv_closed"] and r["csv_rows"] == 2
    assert r["best_restored"] and r["checkpoint_kept"] and r["model_usable"]
    assert r["handler_restored"]
    assert "stopping after the current batch" in proc.stderr


def test_second_ctrl_c_stops_at_once(tmp_path):
    r = result_of(run("twice", tmp_path))
    assert not r["returned"]                       # KeyboardInterrupt reached the caller
    assert r["csv_closed"] and r["handler_restored"] and r["model_usable"]


def test_ctrl_c_from_outside(tmp_path):
    proc = subprocess.Popen([sys.executable, str(WORKER), "external", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "ready").exists():
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    r = result_of(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert r["returned"] and r["interrupted"] and r["csv_closed"] and r["checkpoint_kept"]


def test_fit_in_a_thread_leaves_signals_alone():
    import threading
    before = signal.getsignal(signal.SIGINT)
    model = nn.Sequential(nn.Linear(2, 2))
    errors = []

    def train():
        try:
            import numpy as np
            model.fit(np.ones((4, 2), np.float32), np.zeros(4, np.int64), loss="cross_entropy",
                      optimizer=optim.SGD(model.parameters(), lr=0.1), verbose=0)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=train)
    t.start()
    t.join()
    assert not errors and signal.getsignal(signal.SIGINT) is before
