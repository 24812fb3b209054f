"""``nn.Embedding``: a lookup table of learnable vectors (gather forward, scatter-add backward)."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._random import get_rng
from .module import Module, Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """``indices (any shape, integers in [0, num_embeddings)) -> indices.shape + (embedding_dim,)``.

    ``weight (num_embeddings, embedding_dim)`` drawn from N(0, 1) as in PyTorch. Backward
    adds each output gradient row into the row it came from, in a fixed order (deterministic
    for any thread count) and returns None (integer inputs have no gradient).
    """

    _reentrant = True  # per-call state: the rebound _indices and _scratch buffers

    def __init__(self, num_embeddings, embedding_dim, rng=None, dtype=np.float32):
        super().__init__()
        for name, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Embedding: {name} must be a positive integer, got {v!r}")
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        w = get_rng(rng).standard_normal((self.num_embeddings, self.embedding_dim))
        self.weight = Parameter(w.astype(dtype))
        self._indices = None

    def forward(self, indices):
        idx = np.asarray(indices)
        if np.issubdtype(idx.dtype, np.floating) and np.all(np.isfinite(idx)) \
                and np.all(idx == np.trunc(idx)):
            idx = idx.astype(np.int64)  # model.fit casts inputs to the model's float dtype
        if idx.dtype == np.bool_ or not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"Embedding: indices must be integers (or floats holding whole "
                            f"numbers), got dtype {idx.dtype}")
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            raise ValueError(f"Embedding: indices must lie in [0, {self.num_embeddings}), got "
                             f"values in [{idx.min()}, {idx.max()}]")
        out = self._scratch("out", idx.shape + (self.embedding_dim,), self.weight.data.dtype)
        F.embedding(self.weight.data, idx, out=out)
        self._indices = idx
        return out

    def backward(self, grad_out):
        if self._indices is None:
            raise RuntimeError("Embedding.backward called before forward")
        expected = self._indices.shape + (self.embedding_dim,)
        if not isinstance(grad_out, np.ndarray) or grad_out.shape != expected:
            raise ValueError(f"Embedding: grad_out must have shape {expected}, got "
                             f"{getattr(grad_out, 'shape', type(grad_out).__name__)}")
        if self.weight.requires_grad:
            F.embedding_backward(grad_out, self._indices, self.weight.grad)
        return None

    def backward_params(self, grad_out) -> None:
        self.backward(grad_out)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
