"""bench/compare.py norm: BatchNorm2d/1d and Upsample, forward and forward+backward.

Tables (same run, interleaved, medians; 1 and 2 threads), float32, training mode:
* BatchNorm: neuropil's layer (batch statistics, running-statistics update, dx, dgamma,
  dbeta), the same arithmetic in vectorised NumPy, and PyTorch's module + autograd.
* Upsample: nearest ×2 and bilinear ×2 (align_corners False) and a bilinear
  downsampling: neuropil's layer, NumPy (repeat / reshape-sum for nearest ×2; two
  products with the interpolation matrices for bilinear, the fastest NumPy form), and
  PyTorch's ``F.interpolate`` + autograd.
Each NumPy baseline is checked against neuropil's numbers before it is timed.
"""
from __future__ import annotations

import math

import numpy as np

from neuropil import nn
from _harness import table

BN_SHAPES = [(64, 32, 28, 28), (64, 64, 14, 14), (128, 256, 4, 4), (256, 512)]
UP_CASES = [  # (shape, mode, kwargs)
    ((16, 64, 32, 32), "nearest", dict(scale_factor=2)),
    ((16, 64, 32, 32), "bilinear", dict(scale_factor=2)),
    ((16, 64, 64, 64), "bilinear", dict(size=(40, 40))),
]


# --- NumPy baselines ----------------------------------------------------------------

def np_bn_forward(x, w, b, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(axis=axes, keepdims=True)
    xc = x - mean
    var = np.mean(xc * xc, axis=axes, keepdims=True)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = xc * invstd
    return xhat * w.reshape(shape) + b.reshape(shape), xhat, invstd


def np_bn_forward_backward(x, w, b, dy, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y, xhat, invstd = np_bn_forward(x, w, b, eps)
    m = x.size / x.shape[1]
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    dx = (w.reshape(shape) * invstd / m) * (m * dy - dbeta.reshape(shape)
                                             - xhat * dgamma.reshape(shape))
    return y, dx, dgamma, dbeta


def bilinear_matrix(n_in, n_out, scale=None):
    """A[out, in] of PyTorch's bilinear rule, align_corners=False (float32 arithmetic)."""
    a = np.zeros((n_out, n_in), np.float32)
    r = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
    for d in range(n_out):
        if n_out == n_in:
            a[d, d] = 1
            continue
        src = max(r * (np.float32(d) + np.float32(0.5)) - np.float32(0.5), np.float32(0))
        i0 = min(int(math.floor(src)), n_in - 1)
        lam = min(max(src - np.float32(i0), np.float32(0)), np.float32(1))
        a[d, i0] += 1 - lam
        a[d, i0 + (1 if i0 < n_in - 1 else 0)] += lam
    return a


def np_up_fns(x, mode, kw, dy_shape):
    n, c, h, w = x.shape
    if mode == "nearest":
        fwd = lambda: x.repeat(2, axis=2).repeat(2, axis=3)  # noqa: E731
        bwd = lambda dy: dy.reshape(n, c, h, 2, w, 2).sum(axis=(3, 5))  # noqa: E731
        return fwd, bwd
    scale = kw.get("scale_factor")
    ah = bilinear_matrix(h, dy_shape[2], scale)
    aw = bilinear_matrix(w, dy_shape[3], scale)
    awt, aht = np.ascontiguousarray(aw.T), np.ascontiguousarray(ah.T)
    fwd = lambda: ah @ (x @ awt)  # noqa: E731
    bwd = lambda dy: aht @ (dy @ aw)  # noqa: E731
    return fwd, bwd


# --- tables ---------------------------------------------------------------------------

def _ratios(s, torch):
    row = [s["np fwd"] * 1e3, s["np f+b"] * 1e3, s["numpy fwd"] / s["np fwd"],
           s["numpy f+b"] / s["np f+b"]]
    if torch is not None:
        row += [s["torch fwd"] / s["np fwd"], s["torch f+b"] / s["np f+b"]]
    return row


def _headers(torch):
    h = ["shape", "thr", "fwd ms", "f+b ms", "×NumPy fwd", "×NumPy f+b"]
    return h + (["×torch fwd", "×torch f+b"] if torch is not None else [])


def batchnorm_table(ctx):
    torch = ctx.torch
    rng = np.random.default_rng(0)
    rows = []
    for shape in BN_SHAPES:
        c = shape[1]
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        layer = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(c)
        layer.weight.data[:] = rng.uniform(0.5, 2, c)
        layer.bias.data[:] = rng.standard_normal(c)
        w, b = layer.weight.data.copy(), layer.bias.data.copy()
        # the NumPy baseline computes the same numbers
        layer.zero_grad()
        y = layer(x)
        dx = layer.backward(dy)
        ny, ndx, ndg, ndb = np_bn_forward_backward(x, w, b, dy)
        assert np.allclose(y, ny, rtol=1e-4, atol=1e-4) and np.allclose(dx, ndx, rtol=1e-3, atol=1e-4)
        assert np.allclose(layer.weight.grad, ndg, rtol=1e-3, atol=1e-2)

        def np_fb():
            layer(x)
            layer.backward(dy)

        fns = {"np fwd": lambda: layer(x), "np f+b": np_fb,
               "numpy fwd": lambda: np_bn_forward(x, w, b),
               "numpy f+b": lambda: np_bn_forward_backward(x, w, b, dy)}
        if torch is not None:
            tl = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(c)
            tl.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                                layer.state_dict().items()})
            tx = torch.from_numpy(x).requires_grad_(True)
            tdy = torch.from_numpy(dy)

            def t_fwd():
                with torch.no_grad():
                    tl(tx)

            def t_fb():
                tx.grad = None
                tl.weight.grad = tl.bias.grad = None
                tl(tx).backward(tdy)

            fns["torch fwd"], fns["torch f+b"] = t_fwd, t_fb
        for t in ctx.threads:
            with ctx.threads_set(t):
                s = ctx.time_interleaved(fns)
            rows.append(["×".join(map(str, shape)), t] + _ratios(s, torch))
    print(table("BatchNorm training step, float32 (neuropil's layer; × = how many times "
                "faster neuropil is)", _headers(torch), rows))


def upsample_table(ctx):
    torch = ctx.torch
    rng = np.random.default_rng(1)
    rows = []
    for shape, mode, kw in UP_CASES:
        x = rng.standard_normal(shape).astype(np.float32)
        layer = nn.Upsample(mode=mode, **kw)
        y = layer(x)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = layer.backward(dy)
        nfwd, nbwd = np_up_fns(x, mode, kw, y.shape)
        assert np.allclose(nfwd(), y, rtol=1e-5, atol=1e-5)
        assert np.allclose(nbwd(dy), dx, rtol=1e-4, atol=1e-4)

        def np_fb():
            layer(x)
            layer.backward(dy)

        fns = {"np fwd": lambda: layer(x), "np f+b": np_fb,
               "numpy fwd": nfwd, "numpy f+b": lambda: (nfwd(), nbwd(dy))}
        if torch is not None:
            tx = torch.from_numpy(x).requires_grad_(True)
            tdy = torch.from_numpy(dy)
            interp = torch.nn.functional.interpolate

            def t_fwd():
                with torch.no_grad():
                    interp(tx, mode=mode, **kw)

            def t_fb():
                tx.grad = None
                interp(tx, mode=mode, **kw).backward(tdy)

            fns["torch fwd"], fns["torch f+b"] = t_fwd, t_fb
        what = ", ".join(f"{k}={v}" for k, v in kw.items())
        for t in ctx.threads:
            with ctx.threads_set(t):
                s = ctx.time_interleaved(fns)
            rows.append([f"{'×'.join(map(str, shape))} {mode} {what}", t] + _ratios(s, torch))
    print(table("Upsample, float32 (neuropil's layer; × = how many times faster neuropil is)",
                _headers(torch), rows))


def run(ctx):
    batchnorm_table(ctx)
    upsample_table(ctx)
