"""Activations LeakyReLU, ELU, GELU (erf and tanh forms) and Softplus: one training
step's worth of work per call, forward then backward, float32, on one tensor.

* neuropil: the layer's kernels (forward into a buffer, backward from what the layer
  caches: the output for LeakyReLU/ELU, the input for GELU/Softplus).
* NumPy: the same two passes written with in-place ufuncs into preallocated buffers
  (the best NumPy can do; its erf comes from SciPy's ``ndtr``/``expit``, since NumPy
  has none), checked against neuropil's numbers before timing.
* PyTorch: its forward op and the backward op autograd would call
  (``aten.*_backward``), on tensors sharing the NumPy buffers.

A second table times neuropil's forward + backward on each ISA the CPU runs (same
process, interleaved): what the vectorised float kernels buy.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit, ndtr

from _harness import table

import neuropil
from neuropil import functional as F

SQRT_2PI = np.float32(np.sqrt(2 * np.pi))
K0, K1 = np.float32(np.sqrt(2 / np.pi)), np.float32(0.044715)


class NumpyAct:
    """Preallocated buffers and the two passes of each activation in NumPy."""

    def __init__(self, n):
        self.y, self.dx, self.t, self.u = (np.empty(n, np.float32) for _ in range(4))
        self.mask = np.empty(n, bool)

    def leaky(self, x, g, slope=np.float32(0.01)):
        y, dx, mask = self.y, self.dx, self.mask
        np.multiply(x, slope, out=y)
        np.maximum(x, y, out=y)  # slope in [0, 1]
        np.greater(y, 0, out=mask)
        np.multiply(g, slope, out=dx)
        np.copyto(dx, g, where=mask)

    def elu(self, x, g, alpha=np.float32(1.0)):
        y, dx, t, mask = self.y, self.dx, self.t, self.mask
        np.expm1(x, out=t)
        np.multiply(t, alpha, out=y)
        np.greater(x, 0, out=mask)
        np.copyto(y, x, where=mask)
        np.greater(y, 0, out=mask)  # backward from the output: g * (y + alpha) where y <= 0
        np.add(y, alpha, out=t)
        np.multiply(t, g, out=dx)
        np.copyto(dx, g, where=mask)

    def gelu(self, x, g):
        y, dx, t, u = self.y, self.dx, self.t, self.u
        ndtr(x, out=t)
        np.multiply(x, t, out=y)
        np.multiply(x, x, out=u)  # backward: g * (cdf + x exp(-x^2/2) / sqrt(2 pi))
        np.multiply(u, np.float32(-0.5), out=u)
        np.exp(u, out=u)
        np.multiply(u, x, out=u)
        np.divide(u, SQRT_2PI, out=u)
        np.add(t, u, out=t)
        np.multiply(t, g, out=dx)

    def gelu_tanh(self, x, g):
        y, dx, t, u = self.y, self.dx, self.t, self.u
        np.multiply(x, x, out=u)
        np.multiply(u, K1, out=u)
        np.add(u, 1, out=u)
        np.multiply(u, x, out=u)
        np.multiply(u, K0, out=u)
        np.tanh(u, out=t)  # t = tanh(k0 (x + k1 x^3))
        np.add(t, 1, out=y)
        np.multiply(y, x, out=y)
        np.multiply(y, np.float32(0.5), out=y)
        # backward: 0.5 (1 + t) + 0.5 x (1 - t^2) k0 (1 + 3 k1 x^2)
        np.multiply(t, t, out=u)
        np.subtract(1, u, out=u)
        np.multiply(u, x, out=u)
        np.multiply(x, x, out=dx)
        np.multiply(dx, 3 * K1, out=dx)
        np.add(dx, 1, out=dx)
        np.multiply(dx, u, out=dx)
        np.multiply(dx, K0, out=dx)
        np.add(dx, t, out=dx)
        np.add(dx, 1, out=dx)
        np.multiply(dx, np.float32(0.5), out=dx)
        np.multiply(dx, g, out=dx)

    def softplus(self, x, g):
        y, dx, mask = self.y, self.dx, self.mask
        np.logaddexp(np.float32(0), x, out=y)
        np.greater(x, 20, out=mask)
        np.copyto(y, x, where=mask)
        expit(x, out=dx)
        np.multiply(dx, g, out=dx)
        np.copyto(dx, g, where=mask)


def _neuropil_step(name, x, g, y, dx):
    """Forward into y, then backward into dx, as the layer runs them."""
    if name == "leaky":
        F.leaky_relu(x, 0.01, out=y)
        F.leaky_relu_backward(y, g, 0.01, out=dx)
    elif name == "elu":
        F.elu(x, 1.0, out=y)
        F.elu_backward(y, g, 1.0, is_result=True, out=dx)
    elif name in ("gelu", "gelu_tanh"):
        ap = "tanh" if name == "gelu_tanh" else "none"
        F.gelu(x, ap, out=y)
        F.gelu_backward(x, g, ap, out=dx)
    else:
        F.softplus(x, out=y)
        F.softplus_backward(x, g, out=dx)


def _torch_step(torch, name):
    aten = torch.ops.aten

    def leaky(x, g):
        y = torch.nn.functional.leaky_relu(x, 0.01)
        return y, aten.leaky_relu_backward(g, y, 0.01, True)

    def elu(x, g):
        y = torch.nn.functional.elu(x, 1.0)
        return y, aten.elu_backward(g, 1.0, 1, 1, True, y)

    def gelu(x, g):
        return torch.nn.functional.gelu(x), aten.gelu_backward(g, x)

    def gelu_tanh(x, g):
        return (torch.nn.functional.gelu(x, approximate="tanh"),
                aten.gelu_backward(g, x, approximate="tanh"))

    def softplus(x, g):
        return torch.nn.functional.softplus(x), aten.softplus_backward(g, x, 1.0, 20.0)

    return {"leaky": leaky, "elu": elu, "gelu": gelu, "gelu_tanh": gelu_tanh,
            "softplus": softplus}[name]


NAMES = {"leaky": "LeakyReLU(0.01)", "elu": "ELU(1.0)", "gelu": "GELU", "gelu_tanh": "GELU tanh",
         "softplus": "Softplus"}


def run(ctx) -> str:
    torch = ctx.torch
    sizes = [1 << 18] if ctx.quick else [1 << 16, 1 << 18, 1 << 22]
    rng = np.random.default_rng(0)
    rows, isa_rows = [], []
    isas = neuropil.show_config(mode="dicts")["available_isas"]
    best = neuropil.get_isa()
    for n in sizes:
        x = (rng.standard_normal(n) * 3).astype(np.float32)
        g = rng.standard_normal(n).astype(np.float32)
        y, dx = np.empty_like(x), np.empty_like(x)
        ref = NumpyAct(n)
        tx, tg = (torch.from_numpy(x), torch.from_numpy(g)) if torch is not None else (None, None)
        for name in NAMES:
            # the NumPy (and PyTorch) step computes what neuropil computes
            _neuropil_step(name, x, g, y, dx)
            getattr(ref, name)(x, g)
            np.testing.assert_allclose(ref.y, y, rtol=2e-5, atol=1e-6, err_msg=name)
            np.testing.assert_allclose(ref.dx, dx, rtol=2e-5, atol=1e-5, err_msg=name)
            if torch is not None:
                # (PyTorch's float erf is accurate to ~1e-6 absolute, not relative)
                ty, tdx = _torch_step(torch, name)(tx, tg)
                np.testing.assert_allclose(ty.numpy(), y, rtol=2e-5, atol=1e-5, err_msg=name)
                np.testing.assert_allclose(tdx.numpy(), dx, rtol=2e-5, atol=1e-5, err_msg=name)
            for t in ctx.threads:
                with ctx.threads_set(t):
                    fns = {"neuropil": lambda: _neuropil_step(name, x, g, y, dx),
                           "numpy": lambda: getattr(ref, name)(x, g)}
                    if torch is not None:
                        step = _torch_step(torch, name)
                        fns["torch"] = lambda: step(tx, tg)
                    times = ctx.time_interleaved(fns, threads=t)
                nt = times["neuropil"]
                th = times.get("torch")
                rows.append([NAMES[name], f"{n:,}", t, nt * 1e6, times["numpy"] * 1e6,
                             th * 1e6 if th else "-", 4 * 4 * n / nt / 1e9,
                             times["numpy"] / nt, th / nt if th else "-"])
            if n == sizes[0] and len(isas) > 1:
                def on(isa):
                    def fn():
                        neuropil.set_isa(isa)
                        _neuropil_step(name, x, g, y, dx)
                    return fn
                with ctx.threads_set(1):
                    times = ctx.time_interleaved({isa: on(isa) for isa in isas}, threads=1)
                neuropil.set_isa(best)
                isa_rows.append([NAMES[name], f"{n:,}"] + [times[i] * 1e6 for i in isas]
                                + [times["generic"] / times[i] for i in isas[1:]])
    text = table("activations, float32, forward + backward per call (µs; ratio = other / "
                 "neuropil; GB/s counts x, y, dy, dx once each)",
                 ["activation", "elements", "threads", "neuropil µs", "numpy µs", "torch µs",
                  "neuropil GB/s", "vs numpy", "vs torch"], rows)
    if isa_rows:
        text += "\n" + table("activations per ISA, 1 thread (µs; speed-up over the portable "
                             "build)",
                             ["activation", "elements"] + [f"{i} µs" for i in isas]
                             + [f"{i} vs generic" for i in isas[1:]], isa_rows)
    print(text)
    return text
