"""Small reference layers and losses for the training-loop tests.

Written with NumPy and functional.gemm so the training tests do not depend on
the dense layers; they follow the Module/loss protocol exactly.
"""
import numpy as np

import neuropil
from neuropil import nn
from neuropil.functional import gemm


class TinyLinear(nn.Module):
    def __init__(self, in_features, out_features, rng=None):
        super().__init__()
        g = neuropil._random.get_rng(rng)
        bound = 1 / np.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(g.uniform(-bound, bound, (out_features, in_features)), dtype=np.float32)
        self.bias = nn.Parameter(g.uniform(-bound, bound, out_features), dtype=np.float32)

    def forward(self, x):
        self.x = x
        return gemm(x, self.weight.data, trans_b=True) + self.bias.data

    def backward(self, dy):
        dy = np.ascontiguousarray(dy, dtype=self.weight.dtype)
        gemm(dy, self.x, trans_a=True, beta=1.0, out=self.weight.grad)
        self.bias.grad += dy.sum(axis=0)
        return gemm(dy, self.weight.data)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class TinyReLU(nn.Module):
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dy):
        return dy * self.mask


class TinyCE:
    """Mean softmax cross-entropy over integer labels."""
    reduction = "mean"

    def forward(self, logits, labels):
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        self.p, self.labels = p, labels
        return float(-np.mean(np.log(p[np.arange(len(labels)), labels])))

    def backward(self):
        g = self.p.copy()
        g[np.arange(len(self.labels)), self.labels] -= 1
        return g / len(self.labels)


class TinyMSE:
    reduction = "mean"

    def forward(self, pred, target):
        self.d = pred - target.reshape(pred.shape)
        return float(np.mean(self.d ** 2))

    def backward(self):
        return 2 * self.d / self.d.size


def mlp(n_in=4, hidden=16, n_out=3):
    return nn.Sequential(TinyLinear(n_in, hidden), TinyReLU(), TinyLinear(hidden, n_out))


def blobs(n=240, n_in=4, classes=3, seed=0):
    """Gaussian blobs, well separated: a small MLP reaches ~100% on them."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, n_in)) * 3
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.standard_normal((n, n_in))
    return x.astype(np.float32), y
