"""bench/compare.py conv: convolution layers and LeNet-like CNN training.

Tables (same run, interleaved, medians; 1 and 2 threads):
* conv2d forward and forward+backward for the three shapes of the issue:
  neuropil, NumPy im2col (``bench/numpy_cnn.py``) and PyTorch when installed.
* LeNet-like training step (batch 64, SGD momentum): samples/s, ratios,
  the step's GFLOP/s as a share of the FMA-loop peak, page faults per step.
  NumPy's step is checked against neuropil's loss and gradients first.
"""
from __future__ import annotations

import numpy as np

import neuropil
import neuropil.functional as F
from _harness import table
from numpy_cnn import NumpyLeNet, _col2im, _im2col

SHAPES = [  # (N, C, H, W, OC, k, pad, stride, groups)
    (64, 1, 28, 28, 32, 3, 1, 1, 1),
    (64, 32, 14, 14, 64, 3, 1, 1, 1),
    (32, 3, 32, 32, 64, 5, 0, 1, 1),
    (64, 32, 28, 28, 64, 3, 1, 2, 1),     # stride 2
    (64, 64, 14, 14, 128, 1, 0, 1, 1),    # 1x1
    (64, 64, 7, 7, 128, 3, 1, 1, 1),      # 64 -> 128 at 7x7
    (64, 64, 14, 14, 64, 3, 1, 1, 4),     # grouped
    (64, 64, 14, 14, 64, 3, 1, 1, 64),    # depthwise
]
BATCH = 64


def _np_conv_fwd(x, w, b, k, pad, stride=1, groups=1):
    if stride != 1 or groups != 1:  # the NumPy baseline covers the plain shapes only
        return None, None
    n, _, h, wd = x.shape
    oh, ow = h + 2 * pad - k + 1, wd + 2 * pad - k + 1
    cols = _im2col(x, k, pad)
    y = cols @ w.reshape(w.shape[0], -1).T + b
    return np.ascontiguousarray(y.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)), cols


def _np_conv_fwd_bwd(x, w, b, dy, k, pad, stride=1, groups=1):
    _, cols = _np_conv_fwd(x, w, b, k, pad, stride, groups)
    if cols is None:
        return None, None, None
    oc = w.shape[0]
    dy2 = dy.transpose(0, 2, 3, 1).reshape(-1, oc)
    dw = (dy2.T @ cols).reshape(w.shape)
    db = dy2.sum(axis=0)
    dx = _col2im(dy2 @ w.reshape(oc, -1), x.shape, k, pad)
    return dx, dw, db


def conv_table(ctx):
    torch = ctx.torch
    rng = np.random.default_rng(0)
    rows = []
    for (n, c, h, w_, oc, k, pad, st, grp) in SHAPES[:3] if ctx.quick else SHAPES:
        x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
        w = (rng.standard_normal((oc, c // grp, k, k)) / np.sqrt(c // grp * k * k)).astype(np.float32)
        b = rng.standard_normal(oc).astype(np.float32)
        y = F.conv2d(x, w, b, st, pad, 1, grp)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        gx, gw, gb = np.empty_like(x), np.empty_like(w), np.empty_like(b)
        flops = 2.0 * y.size * (c // grp) * k * k
        fns = {
            "np fwd": lambda: F.conv2d(x, w, b, st, pad, 1, grp, out=y),
            "np fwd+bwd": lambda: (F.conv2d(x, w, b, st, pad, 1, grp, out=y),
                                   F.conv2d_backward(x, w, dy, st, pad, 1, grp, grad_input=gx,
                                                     grad_weight=gw, grad_bias=gb)),
        }
        has_numpy = st == 1 and grp == 1
        if has_numpy:
            fns["numpy fwd"] = lambda: _np_conv_fwd(x, w, b, k, pad)
            fns["numpy fwd+bwd"] = lambda: _np_conv_fwd_bwd(x, w, b, dy, k, pad)
            # the NumPy baseline computes the same numbers
            ndx, ndw, _ = _np_conv_fwd_bwd(x, w, b, dy, k, pad)
            F.conv2d_backward(x, w, dy, padding=pad, grad_input=gx, grad_weight=gw, grad_bias=gb)
            assert np.allclose(ndx, gx, rtol=1e-3, atol=1e-3) and np.allclose(ndw, gw, rtol=1e-3, atol=1e-2)
        if torch is not None:
            tx = torch.from_numpy(x).requires_grad_(True)
            tw = torch.from_numpy(w.copy()).requires_grad_(True)
            tb = torch.from_numpy(b.copy()).requires_grad_(True)
            tdy = torch.from_numpy(dy)

            def t_fwd():
                with torch.no_grad():
                    torch.nn.functional.conv2d(tx, tw, tb, st, pad, 1, grp)

            def t_fwd_bwd():
                tx.grad = tw.grad = tb.grad = None
                torch.nn.functional.conv2d(tx, tw, tb, st, pad, 1, grp).backward(tdy)

            fns["torch fwd"] = t_fwd
            fns["torch fwd+bwd"] = t_fwd_bwd
        for t in ctx.threads:
            with ctx.threads_set(t):
                s = ctx.time_interleaved(fns)
            name = (f"N{n} {c}→{oc} {h}×{w_} {k}×{k} p{pad}" + (f" s{st}" if st != 1 else "")
                    + (f" g{grp}" if grp != 1 else ""))
            peak = ctx.peak.get(t) or None
            gf, gfb = flops / s["np fwd"] / 1e9, 3 * flops / s["np fwd+bwd"] / 1e9
            row = [name, t,
                   s["np fwd"] * 1e3, gf, f"{100 * gf / peak:.0f}%" if peak else "n/a",
                   s["np fwd+bwd"] * 1e3, gfb, f"{100 * gfb / peak:.0f}%" if peak else "n/a",
                   s["numpy fwd"] / s["np fwd"] if has_numpy else "-",
                   s["numpy fwd+bwd"] / s["np fwd+bwd"] if has_numpy else "-"]
            if torch is not None:
                row += [s["torch fwd"] / s["np fwd"], s["torch fwd+bwd"] / s["np fwd+bwd"]]
            rows.append(row)
    headers = ["shape", "thr", "fwd ms", "fwd GF/s", "fwd peak", "f+b ms", "f+b GF/s", "f+b peak",
               "×NumPy fwd", "×NumPy f+b"]
    if torch is not None:
        headers += ["×torch fwd", "×torch f+b"]
    print(table("conv2d float32 (neuropil; × = how many times faster than the other)",
                headers, rows))


def _lenet(nn):
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
    model[0].input_grad = False  # nothing needs the input's gradient (PyTorch skips it too)
    return model


def lenet_flops(n=BATCH):
    fwd_c1 = 2.0 * n * 32 * 9 * 28 * 28
    fwd = fwd_c1 + 2.0 * n * 64 * 288 * 14 * 14 + 2.0 * n * 3136 * 128 + 2.0 * n * 128 * 10
    return 3 * fwd - fwd_c1  # backward: 2× forward, minus conv1's input gradient


def lenet_table(ctx):
    from neuropil import nn
    missing = [m for m in ("Linear", "ReLU", "Flatten", "CrossEntropyLoss") if not hasattr(nn, m)]
    try:
        from neuropil import optim
    except ImportError:
        missing.append("optim")
    if missing:
        print(f"\n## LeNet-like CNN training: needs {missing} (not in this build)")
        return
    torch = ctx.torch
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    lr, mom = 0.01, 0.9
    neuropil.manual_seed(0)
    model = _lenet(nn)
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=lr, momentum=mom)
    ref = NumpyLeNet.from_neuropil(model, lr, mom)

    # check: same loss and gradients before timing
    model.zero_grad()
    loss = loss_fn.forward(model(x), y)
    model.backward(loss_fn.backward())
    ref_loss = ref.loss_and_grads(x, y)
    names = {"0.weight": "conv1.w", "0.bias": "conv1.b", "3.weight": "conv2.w",
             "3.bias": "conv2.b", "7.weight": "fc1.w", "7.bias": "fc1.b",
             "9.weight": "fc2.w", "9.bias": "fc2.b"}
    assert abs(float(loss) - ref_loss) < 1e-4 * max(1, abs(ref_loss)), (loss, ref_loss)
    for k, p in model.named_parameters():
        g = ref.g[names[k]]
        err = np.abs(p.grad - g).max() / max(np.abs(g).max(), 1e-12)
        assert err < 2e-3, f"{k}: relative gradient difference {err:.2e}"
    print(f"\nchecked: NumPy step matches neuropil (loss {ref_loss:.6f} vs {float(loss):.6f}, "
          f"gradients within 2e-3 relative)")

    def np_step():
        opt.zero_grad()
        out = model(x)
        loss_fn.forward(out, y)
        model.backward(loss_fn.backward())
        opt.step()

    fns = {"neuropil": np_step, "numpy": lambda: ref.step(x, y)}
    if torch is not None:
        tm = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(3136, 128), torch.nn.ReLU(),
            torch.nn.Linear(128, 10))
        tm.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
        topt = torch.optim.SGD(tm.parameters(), lr=lr, momentum=mom)
        tloss = torch.nn.CrossEntropyLoss()
        tx, ty = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

        def t_step():
            topt.zero_grad()
            tloss(tm(tx), ty).backward()
            topt.step()

        fns["torch"] = t_step
    flops = lenet_flops()
    rows = []
    for t in ctx.threads:
        with ctx.threads_set(t):
            s = ctx.time_interleaved(fns)
            faults = dict(ctx.last_faults)
        gf = flops / s["neuropil"] / 1e9
        # The start-of-run probe can land in a time-slice; probe again here, keep the larger.
        peak = max(ctx.peak.get(t, 0.0), ctx.fma_probe(t, 0.5)) or None
        row = [t, BATCH / s["neuropil"], BATCH / s["numpy"], s["numpy"] / s["neuropil"]]
        if torch is not None:
            row += [BATCH / s["torch"], s["torch"] / s["neuropil"]]
        row += [gf, f"{100 * gf / peak:.0f}%" if peak else "n/a",
                f"{faults['neuropil']:.0f}/{faults['numpy']:.0f}"
                + (f"/{faults['torch']:.0f}" if torch is not None else "")]
        rows.append(row)
    headers = ["thr", "neuropil samples/s", "NumPy samples/s", "×NumPy"]
    if torch is not None:
        headers += ["PyTorch samples/s", "×PyTorch"]
    headers += ["neuropil GFLOP/s", "of FMA peak (probe)", "faults/step neuropil/NumPy" + ("/torch" if torch else "")]
    print(table(f"LeNet-like CNN training step, batch {BATCH}, float32 "
                f"({flops / 1e9:.2f} GFLOP/step)", headers, rows))


def run(ctx):
    conv_table(ctx)
    lenet_table(ctx)
