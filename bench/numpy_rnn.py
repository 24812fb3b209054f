"""NumPy BPTT training step for the recurrent benchmark (bench/family_rnn.py).

Many-to-one classification: ``x (N, T, I)`` -> RNN/LSTM/GRU (PyTorch's equations and
weight layout) -> last hidden state -> Linear(hidden, classes) -> softmax cross-entropy
(mean over the batch) -> plain SGD. Written the way one writes it well in NumPy: the input
projection of all steps as one matmul, one matmul per step, the weight gradients as single
matmuls over all steps after the backward loop. float32 throughout.
"""
from __future__ import annotations

import numpy as np

GATES = {"rnn_tanh": 1, "lstm": 4, "gru": 3}


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


class NumpyRecurrentClassifier:
    """Parameters (PyTorch names): weight_ih, weight_hh, bias_ih, bias_hh, head_w, head_b."""

    def __init__(self, mode: str, params: dict, lr: float):
        if mode not in GATES:
            raise ValueError(f"mode must be one of {sorted(GATES)}, got {mode!r}")
        self.mode = mode
        self.p = {k: np.array(v, np.float32) for k, v in params.items()}
        self.lr = np.float32(lr)

    def loss_and_grads(self, x: np.ndarray, labels: np.ndarray):
        p, mode = self.p, self.mode
        N, T, I = x.shape
        H = p["weight_hh"].shape[1]
        G = GATES[mode]
        xt = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * N, I)
        gi = (xt @ p["weight_ih"].T).reshape(T, N, G * H)
        gi += p["bias_ih"]
        if mode != "gru":
            gi += p["bias_hh"]
        hs = np.zeros((T + 1, N, H), np.float32)  # hs[t] enters step t
        cache = np.empty((T, N, (4 if mode != "rnn_tanh" else 1) * H), np.float32)
        cs = np.zeros((T + 1, N, H), np.float32) if mode == "lstm" else None
        for t in range(T):
            h = hs[t]
            if mode == "rnn_tanh":
                a = gi[t] + h @ p["weight_hh"].T
                hs[t + 1] = np.tanh(a)
                cache[t] = hs[t + 1]
            elif mode == "lstm":
                a = gi[t] + h @ p["weight_hh"].T
                sg = _sigmoid(a)
                i, f, o = sg[:, :H], sg[:, H:2 * H], sg[:, 3 * H:]
                g = np.tanh(a[:, 2 * H:3 * H])
                cs[t + 1] = f * cs[t] + i * g
                tc = np.tanh(cs[t + 1])
                hs[t + 1] = o * tc
                cache[t, :, :H], cache[t, :, H:2 * H] = i, f
                cache[t, :, 2 * H:3 * H], cache[t, :, 3 * H:] = g, o
            else:
                gh = h @ p["weight_hh"].T + p["bias_hh"]
                rz = _sigmoid(gi[t, :, :2 * H] + gh[:, :2 * H])
                r, z = rz[:, :H], rz[:, H:]
                n = np.tanh(gi[t, :, 2 * H:] + r * gh[:, 2 * H:])
                hs[t + 1] = (1 - z) * n + z * h
                cache[t, :, :2 * H] = rz
                cache[t, :, 2 * H:3 * H] = n
                cache[t, :, 3 * H:] = gh[:, 2 * H:]
        last = hs[T]
        logits = last @ p["head_w"].T + p["head_b"]
        m = logits.max(axis=1, keepdims=True)
        e = np.exp(logits - m)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - logits[np.arange(N), labels]))
        dlogits = e / s
        dlogits[np.arange(N), labels] -= 1.0
        dlogits /= N
        grads = {"head_w": dlogits.T @ last, "head_b": dlogits.sum(0)}
        dh = dlogits @ p["head_w"]
        dgx = np.empty((T, N, G * H), np.float32)
        dgh = np.empty((T, N, G * H), np.float32) if mode == "gru" else dgx
        dc = np.zeros((N, H), np.float32) if mode == "lstm" else None
        for t in reversed(range(T)):
            if mode == "rnn_tanh":
                h1 = cache[t]
                dgx[t] = dh * (1 - h1 * h1)
                dh = dgx[t] @ p["weight_hh"]
            elif mode == "lstm":
                i, f = cache[t, :, :H], cache[t, :, H:2 * H]
                g, o = cache[t, :, 2 * H:3 * H], cache[t, :, 3 * H:]
                tc = np.tanh(cs[t + 1])
                dct = dc + dh * o * (1 - tc * tc)
                dgx[t, :, :H] = dct * g * i * (1 - i)
                dgx[t, :, H:2 * H] = dct * cs[t] * f * (1 - f)
                dgx[t, :, 2 * H:3 * H] = dct * i * (1 - g * g)
                dgx[t, :, 3 * H:] = dh * tc * o * (1 - o)
                dc = dct * f
                dh = dgx[t] @ p["weight_hh"]
            else:
                r, z = cache[t, :, :H], cache[t, :, H:2 * H]
                n, hn = cache[t, :, 2 * H:3 * H], cache[t, :, 3 * H:]
                dnp = dh * (1 - z) * (1 - n * n)
                dr = dnp * hn * r * (1 - r)
                dz = dh * (hs[t] - n) * z * (1 - z)
                dgx[t, :, :H] = dr
                dgx[t, :, H:2 * H] = dz
                dgx[t, :, 2 * H:] = dnp
                dgh[t, :, :2 * H] = dgx[t, :, :2 * H]
                dgh[t, :, 2 * H:] = dnp * r
                dh = dh * z + dgh[t] @ p["weight_hh"]
        dgx2 = dgx.reshape(T * N, G * H)
        dgh2 = dgh.reshape(T * N, G * H)
        grads["weight_ih"] = dgx2.T @ xt
        grads["weight_hh"] = dgh2.T @ hs[:T].reshape(T * N, H)
        grads["bias_ih"] = dgx2.sum(0)
        grads["bias_hh"] = dgh2.sum(0)
        return loss, grads

    def step(self, x, labels) -> float:
        loss, grads = self.loss_and_grads(x, labels)
        for k, g in grads.items():
            self.p[k] -= self.lr * g
        return loss
