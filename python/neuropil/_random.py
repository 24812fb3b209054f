"""Seeding: one process-wide numpy Generator that layers and data loaders draw from.

``neuropil.manual_seed(s)`` resets it, so that the same seed gives the same
initial weights, dropout masks and shuffles (and, since kernels never depend
on the thread count, the same trained weights bitwise).
"""
from __future__ import annotations

import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed neuropil's global generator and return it."""
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    _rng = np.random.default_rng(int(seed))
    return _rng


def get_rng(rng: np.random.Generator | int | None = None) -> np.random.Generator:
    """The generator to use: ``rng`` itself, a new one seeded with it, or the global one."""
    if rng is None:
        return _rng
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, "
                    f"got {type(rng).__name__}")
