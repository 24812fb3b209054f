"""Memory of a training step: peak resident memory of a LeNet-like CNN training
step (batch 64, 1x28x28, conv 32 -> pool -> conv 64 -> pool -> linear 10, SGD),
neuropil next to PyTorch. Each library runs in its own fresh interpreter (so
neither sees the other's allocations): it imports, builds the model and data,
notes its resident memory (baseline), trains 30 steps, and reports the peak
resident memory (ru_maxrss) and how much the resident memory still grew between
step 10 and step 30 (0 when buffers are reused)."""
from __future__ import annotations

import json
import subprocess
import sys

from _harness import table

STEP = r"""
import json, os, sys
import numpy as np
lib, threads = sys.argv[1], int(sys.argv[2])

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

g = np.random.default_rng(0)
x = g.standard_normal((64, 1, 28, 28)).astype(np.float32)
y = g.integers(0, 10, 64)
if lib == "neuropil":
    import neuropil
    from neuropil import nn, optim
    neuropil.set_num_threads(threads)
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(64 * 7 * 7, 10))
    loss, opt = nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    def step():
        opt.zero_grad()
        loss.forward(model(x), y)
        model.backward_params(loss.backward())
        opt.step()
else:
    import torch
    torch.set_num_threads(threads)
    tn = torch.nn
    model = tn.Sequential(tn.Conv2d(1, 32, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2),
                          tn.Conv2d(32, 64, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2),
                          tn.Flatten(), tn.Linear(64 * 7 * 7, 10))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    lossf, opt = tn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    def step():
        opt.zero_grad()
        lossf(model(tx), ty).backward()
        opt.step()
def peak_mb():  # VmHWM: the high-water mark of resident memory
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024

base = rss_mb()
try:  # reset the high-water mark, so import-time peaks do not count
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
for i in range(30):
    step()
    if i == 9:
        at10 = rss_mb()
print(json.dumps({"base": base, "peak": peak_mb(),
                  "growth": rss_mb() - at10}))
"""


def measure(lib: str, threads: int) -> dict | None:
    proc = subprocess.run([sys.executable, "-c", STEP, lib, str(threads)], capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(ctx) -> str:
    libs = ["neuropil"] + (["torch"] if ctx.torch is not None else [])
    rows = []
    for threads in ctx.threads:
        for lib in libs:
            m = measure(lib, threads)
            if m is None:
                rows.append([lib, threads, "failed", "", "", ""])
                continue
            rows.append([lib, threads, f"{m['base']:.0f}", f"{m['peak']:.0f}",
                         f"{m['peak'] - m['base']:.1f}", f"{m['growth']:.1f}"])
    text = table("Memory: LeNet-like CNN training step, batch 64 (MB, fresh process each)",
                 ["library", "threads", "RSS after setup", "peak RSS", "peak - setup",
                  "growth steps 10-30"], rows)
    print(text)
    return text
