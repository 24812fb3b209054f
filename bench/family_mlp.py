"""MLP 784-512-256-10 training throughput: neuropil vs plain NumPy vs PyTorch.

One step = forward, softmax cross-entropy, backward (no gradient w.r.t. the
input), SGD with momentum 0.9. Batches 32 and 128; each thread count in
ctx.threads; all competitors interleaved in the same run. The NumPy step
(bench/numpy_mlp.py) is first checked against neuropil's loss and gradients.
"""
from __future__ import annotations

import numpy as np

import neuropil
from neuropil import nn, optim

from _harness import table
from numpy_mlp import NumpyMLP

SIZES = (784, 512, 256, 10)
LR, MOMENTUM = 0.01, 0.9


def step_flops(batch: int) -> float:
    """Multiply-adds x2 of forward (1x), backward dW (1x) and dX (1x, not for layer 1)."""
    f = sum(2.0 * batch * a * b for a, b in zip(SIZES[:-1], SIZES[1:]))
    return 3 * f - 2.0 * batch * SIZES[0] * SIZES[1]


def build_neuropil(seed=0):
    neuropil.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    return model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)


def linears(model):
    return [m for m in model if isinstance(m, nn.Linear)]


def neuropil_step_fn(model, loss, opt, x, y):
    def step():
        opt.zero_grad()
        loss(model(x), y)
        model.backward_params(loss.backward())
        opt.step()
    return step


def build_torch(torch, model):
    layers = []
    for i, lin in enumerate(linears(model)):
        t = torch.nn.Linear(lin.in_features, lin.out_features)
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(lin.weight.data))
            t.bias.copy_(torch.from_numpy(lin.bias.data))
        layers.append(t)
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    tm = torch.nn.Sequential(*layers)
    return tm, torch.optim.SGD(tm.parameters(), lr=LR, momentum=MOMENTUM)


def torch_step_fn(torch, tm, topt, x, y):
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    ce = torch.nn.CrossEntropyLoss()

    def step():
        topt.zero_grad()
        ce(tm(tx), ty).backward()
        topt.step()
    return step


def check_numpy_reference(batch=32, seed=1):
    """The NumPy step computes neuropil's loss, gradients and updated weights."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], batch)
    model, loss, opt = build_neuropil(seed)
    lins = linears(model)
    ref = NumpyMLP([l.weight.data for l in lins], [l.bias.data for l in lins], LR, MOMENTUM)
    value = loss(model(x), y)
    model.backward_params(loss.backward())
    ref_value, gW, gb = ref.forward_backward(x, y)
    assert abs(value - ref_value) <= 1e-5 * abs(ref_value), (value, ref_value)
    for l, w, b in zip(lins, gW, gb):
        np.testing.assert_allclose(l.weight.grad, w, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(l.bias.grad, b, rtol=1e-4, atol=1e-6)
    for _ in range(2):  # two steps: the second uses the momentum buffers
        opt.step()
        opt.zero_grad()
        ref.step(x, y)
        loss(model(x), y)
        model.backward_params(loss.backward())
    for l, w, b in zip(lins, ref.W, ref.b):
        np.testing.assert_allclose(l.weight.data, w, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(l.bias.data, b, rtol=1e-4, atol=1e-6)


def breakdown_fns(model, loss, opt, x, y):
    """Callables that redo, in isolation, each kind of work of one neuropil step:
    its 8 GEMMs, its elementwise kernels (bias+activation, softmax-CE, ReLU backward,
    bias gradients), the optimizer update. step - their sum = Python orchestration
    (plus cache effects of running them in a different order)."""
    from neuropil import functional as F
    neuropil_step_fn(model, loss, opt, x, y)()  # fills every buffer once
    lins = linears(model)
    relus = [m for m in model if isinstance(m, nn.ReLU)]
    ws = [l.weight.data for l in lins]
    acts = [x] + [r._y for r in relus]                     # inputs of each Linear
    outs = [l._scratch_arrays["out"] for l in lins]         # pre-activation outputs
    gouts = [np.empty_like(o) for o in outs]                 # dL/d(out) of each Linear
    gins = [None] + [np.empty_like(a) for a in acts[1:]]   # dL/d(input), not for layer 1
    gws = [np.empty_like(w) for w in ws]
    gbs = [np.empty_like(l.bias.data) for l in lins]

    def gemms():
        for i, l in enumerate(lins):
            F.gemm(acts[i], ws[i], trans_b=True, out=outs[i])
        for i in range(len(lins) - 1, -1, -1):
            F.gemm(gouts[i], acts[i], trans_a=True, out=gws[i])
            if i > 0:
                F.gemm(gouts[i], ws[i], out=gins[i])

    def elementwise():
        for i, l in enumerate(lins):
            F.bias_activation(outs[i], l.bias.data, "relu" if i < len(relus) else "identity",
                              out=outs[i])
        F.cross_entropy(outs[-1], y, grad=gouts[-1])
        for i in range(len(lins) - 1, -1, -1):
            F.bias_grad(gouts[i], out=gbs[i])
            if i > 0:
                F.relu_backward(acts[i], gins[i], out=gouts[i - 1])

    return {"step": neuropil_step_fn(model, loss, opt, x, y), "gemms": gemms,
            "elementwise": elementwise, "optimizer": opt.step}


def loop_vs_fit_fns(batch, steps=48):
    """One epoch of ``steps`` batches three ways: the README's hand-written loop, ``fit``
    (shuffled batches gathered into buffers, as users run it), and the layers called
    directly without the graph engine (the cost of deriving the backward)."""
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((steps * batch, SIZES[0])).astype(np.float32)
    ys = rng.integers(0, SIZES[-1], steps * batch)
    loop_model, loop_loss, loop_opt = build_neuropil()
    fit_model, fit_loss, fit_opt = build_neuropil()
    raw_model, raw_loss, raw_opt = build_neuropil()
    layers = list(raw_model)
    forwards = [type(m).forward.__wrapped__ for m in layers]  # unrecorded forwards

    def loop():
        for i in range(steps):
            xb, yb = xs[i * batch:(i + 1) * batch], ys[i * batch:(i + 1) * batch]
            loop_opt.zero_grad()
            loop_loss(loop_model(xb), yb)
            loop_model.backward(loop_loss.backward())
            loop_opt.step()

    def fit():
        fit_model.fit(xs, ys, loss=fit_loss, optimizer=fit_opt, epochs=1, batch_size=batch,
                      metrics=(), verbose=0)

    def chain():
        for i in range(steps):
            h, yb = xs[i * batch:(i + 1) * batch], ys[i * batch:(i + 1) * batch]
            raw_opt.zero_grad()
            for m, f in zip(layers, forwards):
                h = f(m, h)
            raw_loss(h, yb)
            g = raw_loss.backward()
            for m in reversed(layers[1:]):
                g = m.backward(g)
            layers[0].backward_params(g)
            raw_opt.step()

    return {"loop": loop, "fit": fit, "chain": chain}, steps


def run(ctx) -> str:
    check_numpy_reference()
    torch = ctx.torch
    batches = (32, 128)
    rows = []
    for threads in ctx.threads:
        for batch in batches:
            rng = np.random.default_rng(batch)
            x = rng.standard_normal((batch, SIZES[0])).astype(np.float32)
            y = rng.integers(0, SIZES[-1], batch)
            model, loss, opt = build_neuropil()
            lins = linears(model)
            ref = NumpyMLP([l.weight.data for l in lins], [l.bias.data for l in lins], LR, MOMENTUM)
            fns = {"neuropil": neuropil_step_fn(model, loss, opt, x, y),
                   "numpy": lambda: ref.step(x, y)}
            if torch is not None:
                tm, topt = build_torch(torch, model)
                fns["torch"] = torch_step_fn(torch, tm, topt, x, y)
            with ctx.threads_set(threads):
                t = ctx.time_interleaved(fns, min_time=0.1 if not ctx.quick else 0.05)
            faults = ctx.last_faults
            peak = ctx.peak.get(threads) or max(ctx.peak.values())
            gflops = step_flops(batch) / t["neuropil"] / 1e9
            row = [threads, batch,
                   batch / t["neuropil"], batch / t["numpy"],
                   t["numpy"] / t["neuropil"]]
            if torch is not None:
                row += [batch / t["torch"], t["torch"] / t["neuropil"]]
            row += [gflops, f"{100 * gflops / peak:.0f}%" if peak else "n/a",
                    f"{faults['neuropil']:.1f}", f"{faults['numpy']:.1f}"]
            if torch is not None:
                row.append(f"{faults['torch']:.1f}")
            rows.append(row)
    headers = ["threads", "batch", "neuropil samples/s", "numpy samples/s", "x numpy"]
    if torch is not None:
        headers += ["torch samples/s", "x torch"]
    headers += ["neuropil GFLOP/s", "of FMA peak", "faults/step np'l", "faults/step numpy"]
    if torch is not None:
        headers.append("faults/step torch")
    out = table("MLP 784-512-256-10 training step (ReLU, softmax-CE, SGD momentum 0.9), float32",
                headers, rows)
    # Where neuropil's step time goes (each part re-run in isolation, same run).
    brows = []
    for threads in ctx.threads:
        for batch in batches:
            rng = np.random.default_rng(batch)
            x = rng.standard_normal((batch, SIZES[0])).astype(np.float32)
            y = rng.integers(0, SIZES[-1], batch)
            model, loss, opt = build_neuropil()
            with ctx.threads_set(threads):
                t = ctx.time_interleaved(breakdown_fns(model, loss, opt, x, y),
                                         min_time=0.1 if not ctx.quick else 0.05)
            rest = t["step"] - t["gemms"] - t["elementwise"] - t["optimizer"]
            share = lambda v: f"{1e6 * v:,.0f} us ({100 * v / t['step']:.0f}%)"
            brows.append([threads, batch, f"{1e6 * t['step']:,.0f} us", share(t["gemms"]),
                          share(t["elementwise"]), share(t["optimizer"]), share(rest),
                          step_flops(batch) / t["gemms"] / 1e9])
    out += table("neuropil MLP step breakdown (parts timed in isolation)",
                 ["threads", "batch", "step", "8 GEMMs", "elementwise", "SGD update",
                  "rest (Python, cache)", "GEMM GFLOP/s"], brows)
    # The README's hand-written loop against fit, and against the layers called directly.
    lrows = []
    for threads in ctx.threads:
        for batch in batches:
            fns, steps = loop_vs_fit_fns(batch)
            with ctx.threads_set(threads):
                t = ctx.time_interleaved(fns, min_time=0.2 if not ctx.quick else 0.1)
            us = {k: 1e6 * v / steps for k, v in t.items()}
            lrows.append([threads, batch, f"{us['loop']:,.0f}", f"{us['fit']:,.0f}",
                          f"{us['chain']:,.0f}", t["loop"] / t["fit"], t["loop"] / t["chain"]])
    out += table("hand-written loop (README) vs fit vs layers called directly, us per step",
                 ["threads", "batch", "loop", "fit", "direct", "loop / fit", "loop / direct"],
                 lrows)
    out += ("\nfloors: >= 1.3x numpy at batch 128, >= 1.5x at batch 32, >= 1.6x torch at both. "
            "NumPy step checked against neuropil's loss/gradients/updates before timing.")
    print(out)
    return out
