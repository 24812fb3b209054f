"""One training step of an MLP (ReLU hidden layers, softmax cross-entropy, SGD with
momentum) written in plain NumPy: the reference neuropil's MLP step is timed against.

Same work as neuropil's step: forward, fused-style softmax-CE gradient, backward
without the gradient w.r.t. the network input, PyTorch's momentum rule
(``b = momentum * b + g``, ``w -= lr * b``; ``b = g`` on the first step, which zero
initial buffers give). Weights use PyTorch's layout: W (out, in), b (out,).
"""
from __future__ import annotations

import numpy as np


class NumpyMLP:
    def __init__(self, weights, biases, lr=0.01, momentum=0.9):
        self.W = [np.array(w, copy=True) for w in weights]
        self.b = [np.array(b, copy=True) for b in biases]
        self.vW = [np.zeros_like(w) for w in self.W]
        self.vb = [np.zeros_like(b) for b in self.b]
        self.lr, self.momentum = lr, momentum

    def forward_backward(self, x, y):
        """Loss and gradients ([dW...], [db...]) of the mean softmax-CE for a batch."""
        acts = [x]
        h = x
        last = len(self.W) - 1
        for i, (w, b) in enumerate(zip(self.W, self.b)):
            h = h @ w.T + b
            if i < last:
                np.maximum(h, 0, out=h)
                acts.append(h)
        n = x.shape[0]
        m = h.max(axis=1, keepdims=True)
        e = np.exp(h - m)
        s = e.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - h[rows, y]))
        d = e / s
        d[rows, y] -= 1
        d /= n
        gW, gb = [None] * len(self.W), [None] * len(self.W)
        for i in range(last, -1, -1):
            gW[i] = d.T @ acts[i]
            gb[i] = d.sum(axis=0)
            if i > 0:  # no gradient w.r.t. the network input
                d = d @ self.W[i]
                d *= acts[i] > 0
        return loss, gW, gb

    def step(self, x, y):
        loss, gW, gb = self.forward_backward(x, y)
        mu, lr = self.momentum, self.lr
        for p, v, g in zip(self.W + self.b, self.vW + self.vb, gW + gb):
            v *= mu
            v += g
            p -= lr * v
        return loss
