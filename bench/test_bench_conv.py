"""pytest-benchmark cases for convolution and pooling (run: pytest bench/ --benchmark-only)."""
import numpy as np
import pytest

import neuropil.functional as F

pytest.importorskip("pytest_benchmark")

SHAPES = {  # (N, C, H, W, OC, k, pad), as in bench/family_conv.py
    "lenet_conv1": (64, 1, 28, 28, 32, 3, 1),
    "lenet_conv2": (64, 32, 14, 14, 64, 3, 1),
    "cifar_5x5": (32, 3, 32, 32, 64, 5, 0),
}


def _setup(name):
    n, c, h, w, oc, k, pad = SHAPES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((oc, c, k, k)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    y = F.conv2d(x, wt, b, padding=pad)
    return x, wt, b, y, pad


@pytest.mark.parametrize("name", list(SHAPES))
def test_conv2d_forward(benchmark, name):
    x, w, b, y, pad = _setup(name)
    benchmark(F.conv2d, x, w, b, padding=pad, out=y)


@pytest.mark.parametrize("name", list(SHAPES))
def test_conv2d_backward(benchmark, name):
    x, w, b, y, pad = _setup(name)
    dy = np.ones_like(y)
    gx, gw, gb = np.empty_like(x), np.empty_like(w), np.empty_like(b)
    benchmark(F.conv2d_backward, x, w, dy, padding=pad, grad_input=gx, grad_weight=gw,
              grad_bias=gb)


def test_max_pool2d_forward_backward(benchmark):
    x = np.random.default_rng(0).standard_normal((64, 32, 28, 28)).astype(np.float32)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    dx = np.empty_like(x)

    def step():
        F.max_pool2d(x, 2, out=y, indices=idx)
        F.max_pool2d_backward(y, idx, x.shape, 2, out=dx)

    benchmark(step)
