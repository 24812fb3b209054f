"""Deterministic kernel workloads for the fork, thread and memory tests.

Each workload is sized to cross the kernels' thresholds for running on
several threads, draws its data from its own seed, and returns the arrays it
produced, so two runs can be compared bitwise (the kernels give the same bits
for any thread count).
"""
from __future__ import annotations

import numpy as np

import neuropil
from neuropil import functional as F, nn, optim


def gemm_work(seed: int = 0) -> list:
    g = np.random.default_rng(seed)
    a = g.standard_normal((192, 160), dtype=np.float32)
    b = g.standard_normal((160, 224), dtype=np.float32)
    c = g.standard_normal((224, 192))
    return [F.gemm(a, b), F.gemm(a, b, trans_a=False, trans_b=False, alpha=0.5),
            F.gemm(c, c, trans_a=True)]


def conv_work(seed: int = 0) -> list:
    g = np.random.default_rng(seed)
    conv = nn.Conv2d(8, 16, 3, padding=1, rng=g)
    x = g.standard_normal((8, 8, 20, 20), dtype=np.float32)
    y = conv(x)
    dy = g.standard_normal(y.shape, dtype=np.float32)
    conv.zero_grad()
    dx = conv.backward(dy)
    return [y.copy(), dx.copy(), conv.weight.grad.copy(), conv.bias.grad.copy()]


def pool_work(seed: int = 0) -> list:
    g = np.random.default_rng(seed)
    x = g.standard_normal((16, 16, 32, 32), dtype=np.float32)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    dx = F.max_pool2d_backward(np.ones_like(y), idx, x.shape, 2)
    a = F.avg_pool2d(x, 3, stride=2, padding=1)
    return [y, dx, a, F.avg_pool2d_backward(np.ones_like(a), x.shape, 3, stride=2, padding=1)]


def lstm_work(seed: int = 0) -> list:
    g = np.random.default_rng(seed)
    lstm = nn.LSTM(32, 64, rng=g)
    x = g.standard_normal((32, 12, 32), dtype=np.float32)
    y = lstm(x)
    dy = g.standard_normal(y.shape, dtype=np.float32)
    lstm.zero_grad()
    dx = lstm.backward(dy)
    return [y.copy(), dx.copy()] + [p.grad.copy() for p in lstm.parameters()]


def optim_work(seed: int = 0) -> list:
    g = np.random.default_rng(seed)
    params = [nn.Parameter(g.standard_normal(70_000).astype(np.float32)) for _ in range(2)]
    sgd = optim.SGD(params[:1], lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    adam = optim.Adam(params[1:], lr=0.001, amsgrad=True)
    for _ in range(3):
        for p in params:
            p.grad = g.standard_normal(p.shape).astype(np.float32)
        sgd.step()
        adam.step()
    return [p.data.copy() for p in params]


def fit_work(seed: int = 0) -> list:
    """A small CNN trained with fit(), its own generator for init and shuffling."""
    g = np.random.default_rng(seed)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, rng=g), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 6 * 6, 32, rng=g), nn.ReLU(),
                          nn.Dropout(0.1, rng=g), nn.Linear(32, 4, rng=g))
    x = g.standard_normal((96, 1, 12, 12), dtype=np.float32)
    y = g.integers(0, 4, 96)
    opt = optim.Adam(model.parameters(), lr=0.01)
    hist = model.fit(x, y, loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=2, batch_size=16,
                     verbose=0, rng=g)
    return [p.data.copy() for p in model.parameters()] + [np.array(hist.history["loss"])]


WORKLOADS = {"gemm": gemm_work, "conv": conv_work, "pool": pool_work, "lstm": lstm_work,
             "optim": optim_work, "fit": fit_work}


def run_all(names=("gemm", "conv", "lstm"), seed: int = 0) -> dict:
    return {name: WORKLOADS[name](seed) for name in names}


def same_bits(a: dict, b: dict) -> bool:
    """True when both results hold the same arrays, bit for bit."""
    if a.keys() != b.keys():
        return False
    for k in a:
        if len(a[k]) != len(b[k]):
            return False
        for u, v in zip(a[k], b[k]):
            if u.shape != v.shape or u.dtype != v.dtype or u.tobytes() != v.tobytes():
                return False
    return True


def threads_now() -> int:
    return neuropil.get_num_threads()
