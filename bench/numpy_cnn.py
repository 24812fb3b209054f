"""A NumPy im2col implementation of the LeNet-like training step (the baseline).

Network (NCHW, float32, batch 64): conv 1→32 3×3 pad 1, ReLU, max-pool 2,
conv 32→64 3×3 pad 1, ReLU, max-pool 2, flatten, Linear 3136→128, ReLU,
Linear 128→10; softmax cross-entropy (mean over the batch); SGD with
momentum (PyTorch's rule: b = μ·b + g, w −= lr·b). The input gradient of the
first convolution is not computed (nothing needs it), as in PyTorch.

Convolutions are im2col (``sliding_window_view`` + one copy) followed by one
GEMM over the whole batch; pooling is reshape + argmax (first maximum wins,
as neuropil's). ``NumpyLeNet.from_neuropil(model)`` copies the weights of a
neuropil model so that ``bench/family_conv.py`` can check loss and gradients
against neuropil's before timing.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

LAYERS = ["conv1", "conv2", "fc1", "fc2"]


def _im2col(x, k, pad):
    """x (N, C, H, W) -> cols (N·OH·OW, C·k·k), stride 1."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (k, k), axis=(2, 3))  # (N, C, OH, OW, k, k)
    n, c, oh, ow = win.shape[:4]
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * oh * ow, c * k * k)


def _col2im(dcols, shape, k, pad):
    """Adjoint of _im2col: (N·OH·OW, C·k·k) -> (N, C, H, W)."""
    n, c, h, w = shape
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    d = dcols.reshape(n, oh, ow, c, k, k)
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dcols.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + oh, j:j + ow] += d[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, pad:pad + h, pad:pad + w]


def _pool_forward(x):
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
        n, c, h // 2, w // 2, 4)
    arg = win.argmax(axis=-1)
    return np.take_along_axis(win, arg[..., None], -1)[..., 0], arg


def _pool_backward(dy, arg, shape):
    n, c, h, w = shape
    dwin = np.zeros((n, c, h // 2, w // 2, 4), dy.dtype)
    np.put_along_axis(dwin, arg[..., None], dy[..., None], -1)
    return dwin.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(shape)


class NumpyLeNet:
    def __init__(self, params: dict, lr=0.01, momentum=0.9):
        self.p = {k: np.array(v, np.float32, copy=True) for k, v in params.items()}
        self.g = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.buf = {k: None for k in self.p}
        self.lr, self.momentum = lr, momentum

    @classmethod
    def from_neuropil(cls, model, lr=0.01, momentum=0.9):
        names = {"0.weight": "conv1.w", "0.bias": "conv1.b", "3.weight": "conv2.w",
                 "3.bias": "conv2.b", "7.weight": "fc1.w", "7.bias": "fc1.b",
                 "9.weight": "fc2.w", "9.bias": "fc2.b"}
        sd = model.state_dict()
        return cls({names[k]: v for k, v in sd.items()}, lr, momentum)

    def _conv(self, x, name):
        w, b = self.p[name + ".w"], self.p[name + ".b"]
        n, _, h, wd = x.shape
        cols = _im2col(x, 3, 1)
        y = cols @ w.reshape(w.shape[0], -1).T + b            # (N·H·W, OC)
        return np.ascontiguousarray(y.reshape(n, h, wd, -1).transpose(0, 3, 1, 2)), cols

    def _conv_backward(self, dy, cols, x_shape, name, need_input):
        w = self.p[name + ".w"]
        oc = w.shape[0]
        dy2 = dy.transpose(0, 2, 3, 1).reshape(-1, oc)        # (N·H·W, OC)
        self.g[name + ".w"] += (dy2.T @ cols).reshape(w.shape)
        self.g[name + ".b"] += dy2.sum(axis=0)
        if need_input:
            return _col2im(dy2 @ w.reshape(oc, -1), x_shape, 3, 1)
        return None

    def loss_and_grads(self, x, y):
        """Forward + backward; fills self.g (zeroed first), returns the mean CE loss."""
        for g in self.g.values():
            g.fill(0)
        p = self.p
        a1, cols1 = self._conv(x, "conv1")
        r1 = np.maximum(a1, 0)
        p1, arg1 = _pool_forward(r1)
        a2, cols2 = self._conv(p1, "conv2")
        r2 = np.maximum(a2, 0)
        p2, arg2 = _pool_forward(r2)
        f = p2.reshape(len(x), -1)
        h = f @ p["fc1.w"].T + p["fc1.b"]
        hr = np.maximum(h, 0)
        z = hr @ p["fc2.w"].T + p["fc2.b"]
        z = z - z.max(axis=1, keepdims=True)
        ez = np.exp(z)
        prob = ez / ez.sum(axis=1, keepdims=True)
        n = len(x)
        loss = float(-np.log(prob[np.arange(n), y]).mean())
        dz = prob
        dz[np.arange(n), y] -= 1
        dz /= n
        self.g["fc2.w"] += dz.T @ hr
        self.g["fc2.b"] += dz.sum(axis=0)
        dh = (dz @ p["fc2.w"]) * (h > 0)
        self.g["fc1.w"] += dh.T @ f
        self.g["fc1.b"] += dh.sum(axis=0)
        dp2 = (dh @ p["fc1.w"]).reshape(p2.shape)
        dr2 = _pool_backward(dp2, arg2, r2.shape) * (a2 > 0)
        dp1 = self._conv_backward(dr2, cols2, p1.shape, "conv2", True)
        dr1 = _pool_backward(dp1, arg1, r1.shape) * (a1 > 0)
        self._conv_backward(dr1, cols1, x.shape, "conv1", False)
        return loss

    def step(self, x, y):
        loss = self.loss_and_grads(x, y)
        for k, w in self.p.items():
            g = self.g[k]
            if self.buf[k] is None:
                self.buf[k] = g.copy()
            else:
                self.buf[k] *= self.momentum
                self.buf[k] += g
            w -= self.lr * self.buf[k]
        return loss
