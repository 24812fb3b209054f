"""Optimizer updates: neuropil's fused one-pass kernels against the same update
written with in-place NumPy ufuncs (the best NumPy can do: no temporaries
beyond one scratch array) and PyTorch's in-place tensor ops, per parameter
tensor, float32. Memory-bound: GB/s counts the bytes each update must touch
(read grad, read+write param and each state array)."""
from __future__ import annotations

import numpy as np

from _harness import table

from neuropil import functional as F


def numpy_sgd(w, g, buf, scratch, lr, mom):
    # b = mom*b + g; w -= lr*b   (PyTorch's SGD with momentum, no dampening)
    np.multiply(buf, mom, out=buf)
    np.add(buf, g, out=buf)
    np.multiply(buf, lr, out=scratch)
    np.subtract(w, scratch, out=w)


def numpy_adam(w, g, m, v, scratch, lr, b1, b2, eps, step):
    bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
    np.multiply(m, b1, out=m)
    np.multiply(g, 1 - b1, out=scratch)
    np.add(m, scratch, out=m)
    np.multiply(v, b2, out=v)
    np.multiply(g, g, out=scratch)
    np.multiply(scratch, 1 - b2, out=scratch)
    np.add(v, scratch, out=v)
    np.sqrt(v, out=scratch)
    np.multiply(scratch, 1 / np.sqrt(bc2), out=scratch)
    np.add(scratch, eps, out=scratch)
    np.divide(m, scratch, out=scratch)
    np.multiply(scratch, lr / bc1, out=scratch)
    np.subtract(w, scratch, out=w)


def run(ctx) -> str:
    torch = ctx.torch
    sizes = [784 * 512] if ctx.quick else [256 * 10, 784 * 512, 4096 * 1024]
    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        w, g = rng.standard_normal(n, np.float32), rng.standard_normal(n, np.float32)
        buf, m, v = np.zeros(n, np.float32), np.zeros(n, np.float32), np.ones(n, np.float32)
        scratch = np.empty(n, np.float32)
        tw, tg, tb, tm, tv = ((torch.from_numpy(a.copy()) for a in (w, g, buf, m, v))
                              if torch is not None else (None,) * 5)
        for t in ctx.threads:
            with ctx.threads_set(t):
                for name, nbytes, fns in [
                    ("SGD momentum", 5 * 4 * n, {
                        "neuropil": lambda: F.sgd_update_(w, g, buf, lr=1e-6, momentum=0.9),
                        "numpy": lambda: numpy_sgd(w, g, buf, scratch, 1e-6, 0.9),
                        **({"torch": lambda: tw.add_(tb.mul_(0.9).add_(tg), alpha=-1e-6)}
                           if torch is not None else {}),
                    }),
                    ("Adam", 7 * 4 * n, {
                        "neuropil": lambda: F.adam_update_(w, g, m, v, lr=1e-6, step=10),
                        "numpy": lambda: numpy_adam(w, g, m, v, scratch, 1e-6, 0.9, 0.999,
                                                    1e-8, 10),
                        **({"torch": lambda: tw.addcdiv_(
                            tm.mul_(0.9).add_(tg, alpha=0.1),
                            tv.mul_(0.999).addcmul_(tg, tg, value=0.001).sqrt().add_(1e-8),
                            value=-1e-6)} if torch is not None else {}),
                    }),
                ]:
                    times = ctx.time_interleaved(fns)
                    np_t = times["numpy"]
                    th_t = times.get("torch")
                    rows.append([name, f"{n:,}", t, times["neuropil"] * 1e6, np_t * 1e6,
                                 th_t * 1e6 if th_t else "-",
                                 nbytes / times["neuropil"] / 1e9,
                                 np_t / times["neuropil"],
                                 (th_t / times["neuropil"]) if th_t else "-"])
    text = table("optimizer updates, float32 (µs per parameter tensor; ratio = other / neuropil)",
                 ["update", "elements", "threads", "neuropil µs", "numpy µs", "torch µs",
                  "neuropil GB/s", "vs numpy", "vs torch"], rows)
    print(text)
    return text
