"""Recurrent networks and embeddings (cpp/include/neuropil/rnn.h has the equations and
layouts)."""
from __future__ import annotations

import numpy as np

from ._common import _as_array, _k

__all__ = ["as_lengths", "rnn_cache", "rnn_forward", "rnn_backward", "embedding",
           "embedding_backward"]


_RNN_MODES = {"rnn_tanh": (1, 1), "rnn_relu": (1, 1), "lstm": (4, 4), "gru": (3, 4)}


def _rnn_mode(mode: str, fn: str):
    if mode not in _RNN_MODES:
        raise ValueError(f"{fn}: mode must be one of {sorted(_RNN_MODES)}, got {mode!r}")
    return _RNN_MODES[mode]


def as_lengths(lengths, batch: int, steps: int, fn: str = "lengths") -> np.ndarray | None:
    """Validate per-sequence lengths: ``None`` or ``batch`` integers in ``[0, steps]`` -> int64."""
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{fn}: lengths must be integers, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"{fn}: lengths must have shape ({batch},) (one per sequence), "
                         f"got {arr.shape}")
    if batch and (arr.min() < 0 or arr.max() > steps):
        raise ValueError(f"{fn}: lengths must lie in [0, {steps}] (the number of time steps), "
                         f"got values in [{arr.min()}, {arr.max()}]")
    return np.ascontiguousarray(arr, dtype=np.int64)


def rnn_cache(mode: str, batch: int, steps: int, input_size: int, hidden: int,
              dtype=np.float32) -> dict:
    """Allocate the arrays one layer-direction needs between forward and backward.

    ``gates (N*T, C*hidden)``, ``xh (N*T, input_size + hidden + 1)`` (each step's
    input, previous state and a one, side by side), for LSTM ``c_prev`` and
    ``tanh_c (N*T, hidden)``, and the backward scratch ``dg (N*T, G*hidden)`` (GRU
    also ``dgh``). Rows are time-major. Allocate once per shape and reuse across calls.
    """
    g, c = _rnn_mode(mode, "rnn_cache")
    rows = int(batch) * int(steps)
    h = int(hidden)
    lstm = mode == "lstm"
    return {
        "gates": np.empty((rows, c * h), dtype),
        "xh": np.empty((rows, int(input_size) + h + 1), dtype),
        "c_prev": np.empty((rows, h), dtype) if lstm else None,
        "tanh_c": np.empty((rows, h), dtype) if lstm else None,
        "dg": np.empty((rows, g * h), dtype),
        "dgh": np.empty((rows, g * h), dtype) if mode == "gru" else None,
    }


def rnn_forward(mode: str, x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None,
                lengths=None, *, batch_first: bool = True, reverse: bool = False,
                y: np.ndarray | None = None, y_col: int = 0, h_n: np.ndarray | None = None,
                c_n: np.ndarray | None = None, cache: dict | None = None):
    """One layer, one direction of an RNN (``mode`` ``"rnn_tanh"``/``"rnn_relu"``), LSTM or GRU.

    ``x (N, T, I)`` (``(T, N, I)`` when not ``batch_first``), ``w_ih (G*H, I)``,
    ``w_hh (G*H, H)``, biases ``(G*H,)`` or None, ``h0``/``c0 (N, H)`` or None
    (zeros), ``lengths (N,)`` or None. Writes ``y[..., y_col:y_col+H]`` (``y``
    is allocated ``(N, T, H)`` when None), ``h_n``/``c_n (N, H)`` and ``cache``
    (see ``rnn_cache``). Returns ``(y, h_n, c_n, cache)``; ``c_n`` is None
    except for LSTM. Steps past ``lengths[n]`` keep the state and output 0.
    """
    fn = "rnn_forward"
    g, _ = _rnn_mode(mode, fn)
    x = _as_array(x, fn, "x")
    if x.ndim != 3:
        raise ValueError(f"{fn}: x must be 3-D with shape "
                         f"{'(N, T, input_size)' if batch_first else '(T, N, input_size)'}, "
                         f"got shape {x.shape}")
    x = np.ascontiguousarray(x)
    w_hh = _as_array(w_hh, fn, "w_hh")
    if w_hh.ndim != 2:
        raise ValueError(f"{fn}: w_hh must be 2-D with shape (gates*hidden, hidden), "
                         f"got shape {w_hh.shape}")
    n, t = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    hidden = w_hh.shape[1]
    lengths = as_lengths(lengths, n, t, fn)
    dt = x.dtype
    if y is None:
        y = np.empty((n, t, hidden) if batch_first else (t, n, hidden), dt)
    if h_n is None:
        h_n = np.empty((n, hidden), dt)
    if mode == "lstm" and c_n is None:
        c_n = np.empty((n, hidden), dt)
    if cache is None:
        cache = rnn_cache(mode, n, t, x.shape[2], hidden, dt)
    _k.rnn_forward(mode, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, y, int(y_col), h_n, c_n,
                   cache["gates"], cache["xh"], cache["c_prev"], cache["tanh_c"],
                   bool(batch_first), bool(reverse))
    return y, h_n, c_n, cache


def rnn_backward(mode: str, x, w_ih, w_hh, cache: dict, dy=None, dh_n=None, dc_n=None,
                 lengths=None, *, dw_ih: np.ndarray, dw_hh: np.ndarray,
                 db_ih: np.ndarray | None = None, db_hh: np.ndarray | None = None,
                 dy_col: int = 0, batch_first: bool = True, reverse: bool = False,
                 dx: np.ndarray | None = None, need_dx: bool = True,
                 dx_accumulate: bool = False, dh0: np.ndarray | None = None,
                 dc0: np.ndarray | None = None):
    """Backward through time of ``rnn_forward`` (same ``x``, weights, lengths, cache).

    ``dy`` is the gradient of the output (columns ``dy_col:dy_col+H`` are read;
    None means zero), ``dh_n``/``dc_n (N, H)`` those of the final states (None:
    zero). Accumulates (+=) into ``dw_ih``, ``dw_hh``, ``db_ih``, ``db_hh``.
    Returns ``(dx, dh0, dc0)``: ``dx`` like ``x`` (written, or added to with
    ``dx_accumulate``; None when ``need_dx`` is False), ``dh0``/``dc0 (N, H)``.
    """
    fn = "rnn_backward"
    _rnn_mode(mode, fn)
    x = np.ascontiguousarray(_as_array(x, fn, "x"))
    if x.ndim != 3:
        raise ValueError(f"{fn}: x must be 3-D, got shape {x.shape}")
    n, t = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    hidden = np.shape(w_hh)[1] if np.ndim(w_hh) == 2 else 0
    lengths = as_lengths(lengths, n, t, fn)
    if dy is not None:
        dy = np.ascontiguousarray(_as_array(dy, fn, "dy"))
    if need_dx and dx is None:
        dx = np.empty_like(x)
    if dh0 is None:
        dh0 = np.empty((n, hidden), x.dtype)
    if mode == "lstm" and dc0 is None:
        dc0 = np.empty((n, hidden), x.dtype)
    _k.rnn_backward(mode, x, w_ih, w_hh, lengths, cache["gates"], cache["xh"],
                    cache["c_prev"], cache["tanh_c"], dy, int(dy_col), dh_n, dc_n, cache["dg"],
                    cache["dgh"], dx if need_dx else None, bool(dx_accumulate), dh0, dc0, dw_ih,
                    dw_hh, db_ih, db_hh, bool(batch_first), bool(reverse))
    return (dx if need_dx else None), dh0, dc0


def _as_indices(indices, fn: str) -> np.ndarray:
    arr = _as_array(indices, fn, "indices")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{fn}: indices must be integers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def embedding(weight, indices, *, out: np.ndarray | None = None) -> np.ndarray:
    """Rows of ``weight (V, E)`` picked by integer ``indices`` (any shape) -> ``indices.shape + (E,)``."""
    weight = _as_array(weight, "embedding", "weight")
    indices = _as_indices(indices, "embedding")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D with shape (num_embeddings, "
                         f"embedding_dim), got shape {weight.shape}")
    weight = np.ascontiguousarray(weight)
    if out is None:
        out = np.empty(indices.shape + (weight.shape[1],), weight.dtype)
    _k.embedding_forward(weight, indices, out)
    return out


def embedding_backward(dout, indices, dweight: np.ndarray) -> np.ndarray:
    """``dweight[indices[m]] += dout[m]`` in a fixed order (deterministic); returns ``dweight``."""
    indices = _as_indices(indices, "embedding_backward")
    dout = np.ascontiguousarray(_as_array(dout, "embedding_backward", "dout"))
    _k.embedding_backward(dout, indices, dweight)
    return dweight

