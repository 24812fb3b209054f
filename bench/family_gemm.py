"""GEMM: neuropil vs NumPy (OpenBLAS) and PyTorch, GFLOP/s and ratios, same run.

Shapes: squares 64-2048 and the products of an MLP/CNN training step, given as
(label, M, N, K, trans_a, trans_b): op(a) is M x K, op(b) is K x N.
"""
from __future__ import annotations

import numpy as np

import neuropil
from neuropil.functional import gemm
from _harness import table

SQUARES = [64, 128, 256, 512, 1024, 2048]
SMALL = [32, 48, 96]
TRAINING = [
    # label, M, N, K, trans_a, trans_b
    ("fwd 128x784.784x512", 128, 512, 784, False, False),
    ("dW 784x128.128x512 (X^T dY)", 784, 512, 128, True, False),
    ("dX 128x512.512x784 (dY W^T)", 128, 784, 512, False, True),
    ("head 128x512.512x10", 128, 10, 512, False, False),
    ("head dW 512x128.128x10", 512, 10, 128, True, False),
    ("conv 64x3136.3136x128", 64, 128, 3136, False, False),
]


def _case(rng, m, n, k, ta, tb, dtype):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    out = np.empty((m, n), dtype)
    an = a.T if ta else a
    bn = b.T if tb else b
    npout = np.empty((m, n), dtype)
    fns = {
        "neuropil": lambda: gemm(a, b, trans_a=ta, trans_b=tb, out=out),
        "numpy": lambda: np.matmul(an, bn, out=npout),
    }
    return fns, (a, b, ta, tb)


def _torch_fn(ctx, a, b, ta, tb):
    torch = ctx.torch
    if torch is None:
        return None
    ta_, tb_ = torch.from_numpy(a), torch.from_numpy(b)
    at = ta_.T if ta else ta_
    bt = tb_.T if tb else tb_
    out = torch.empty((at.shape[0], bt.shape[1]), dtype=at.dtype)
    return lambda: torch.matmul(at, bt, out=out)


def run(ctx) -> None:
    rng = np.random.default_rng(0)
    cases = []
    squares = [128, 512, 1024] if ctx.quick else SQUARES
    for s in (SMALL if not ctx.quick else []) + squares:
        cases.append((f"square {s}", s, s, s, False, False, np.float32))
    for label, m, n, k, ta, tb in TRAINING:
        cases.append((label, m, n, k, ta, tb, np.float32))
    cases.append(("float64 square 1024", 1024, 1024, 1024, False, False, np.float64))
    have_torch = ctx.torch is not None
    for threads in ctx.threads:
        rows = []
        with ctx.threads_set(threads):
            for label, m, n, k, ta, tb, dtype in cases:
                fns, (a, b, ta_, tb_) = _case(rng, m, n, k, ta, tb, dtype)
                tf = _torch_fn(ctx, a, b, ta_, tb_)
                if tf is not None:
                    fns["torch"] = tf
                flops = 2.0 * m * n * k
                min_time = 0.02 if ctx.quick else 0.05
                t = ctx.time_interleaved(fns, min_time=min_time)
                g = {name: flops / sec / 1e9 for name, sec in t.items()}
                row = [label, g["neuropil"], g["numpy"], g["neuropil"] / g["numpy"]]
                if have_torch:
                    row += [g["torch"], g["neuropil"] / g["torch"]]
                peak = ctx.peak.get(threads)
                row.append(f"{100 * g['neuropil'] / peak:.0f}%" if peak and dtype == np.float32 else "-")
                rows.append(row)
        headers = ["shape", "neuropil GF/s", "numpy GF/s", "np/numpy"]
        if have_torch:
            headers += ["torch GF/s", "np/torch"]
        headers.append("% FMA peak")
        peak = ctx.peak.get(threads)
        print(table(f"GEMM float32 (float64 where named), {threads} thread(s), ISA "
                    f"{neuropil.get_isa()}, FMA-loop peak "
                    f"{peak:.0f} GFLOP/s" if peak else f"GEMM, {threads} thread(s)", headers, rows))
