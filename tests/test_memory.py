"""No leaks, no growth: a training run's resident memory stops growing once the
buffers it reuses (layer scratch, im2col and packing scratch, optimizer state)
exist, i.e. after the first epochs. Measured in a fresh interpreter so other
tests' allocations do not blur the numbers; Linux only (reads /proc)."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")

CODE = r"""
import json, os, sys
import numpy as np
import neuropil
from neuropil import nn, optim, callbacks

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

class Probe(callbacks.Callback):
    def __init__(self):
        self.rss = []
    def on_epoch_end(self, epoch, logs=None):
        self.rss.append(rss_mb())

neuropil.manual_seed(0)
g = np.random.default_rng(0)
x = g.standard_normal((256, 1, 16, 16)).astype(np.float32)
y = g.integers(0, 10, 256)
model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                      nn.Flatten(), nn.Linear(16 * 4 * 4, 64), nn.ReLU(), nn.Dropout(0.2),
                      nn.Linear(64, 10))
lstm = nn.Sequential(nn.LSTM(16, 32), nn.LastStep(), nn.Linear(32, 10))
probe, probe2 = Probe(), Probe()
model.fit(x, y, loss=nn.CrossEntropyLoss(), optimizer=optim.Adam(model.parameters()),
          epochs=20, batch_size=32, validation_split=0.1, verbose=0, callbacks=[probe])
xs = x.reshape(256, 16, 16)
lstm.fit(xs, y, loss=nn.CrossEntropyLoss(), optimizer=optim.SGD(lstm.parameters(), lr=0.01,
         momentum=0.9), epochs=20, batch_size=32, verbose=0, callbacks=[probe2])
print(json.dumps({"cnn": probe.rss, "lstm": probe2.rss}))
"""


def test_training_memory_stops_growing_after_the_second_epoch():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rss = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, per_epoch in rss.items():
        assert len(per_epoch) == 20
        growth = max(per_epoch[2:]) - per_epoch[1]
        assert growth < 4.0, f"{name}: RSS grew {growth:.1f} MB after epoch 2: {per_epoch}"
