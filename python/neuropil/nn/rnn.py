"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU``, plus ``LastStep`` and ``TimeDistributed``.

Equations, gate order (LSTM i, f, g, o; GRU r, z, n with the reset gate applied
after the hidden product) and weight layout are PyTorch's, so a ``state_dict``
copied from ``torch.nn.LSTM(...)`` gives the same numbers. The whole sequence
runs in C++ (``neuropil.functional.rnn_forward``/``rnn_backward``).

The state protocol (how this fits ``Module.forward(x) -> y`` and
``backward(dy) -> dx``):

* ``forward(x, state=None, lengths=None)`` returns only the output sequence
  ``(N, T, D*hidden)``, so a recurrent layer drops into ``Sequential``. The
  final state is kept in ``layer.state``: ``h_n (num_layers*D, N, hidden)``
  (RNN, GRU) or the tuple ``(h_n, c_n)`` (LSTM), laid out as PyTorch returns
  them. ``state`` takes the same structure as the initial state (None: zeros).
* ``backward(grad_out, grad_state=None)`` returns the gradient of ``x``.
  ``grad_out`` may be None (the outputs were not used, e.g. an encoder), and
  ``grad_state`` is the gradient of the loss w.r.t. ``layer.state`` (same
  structure; None: zero). The gradient w.r.t. the initial ``state`` is left
  in ``layer.grad_state``. So for an encoder-decoder::

      enc(x_enc)
      y = dec(x_dec, state=enc.state)     # the final state seeds the decoder
      ...; dec.backward(dy)
      enc.backward(None, grad_state=dec.grad_state)

``lengths (N,)`` marks variable-length sequences padded to ``T`` steps: past
``lengths[n]`` the state is frozen and the output is 0, so the padding changes
neither valid outputs, nor the final state, nor any gradient (PyTorch's packed
sequences). Padded entries of ``x`` must still be finite.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from .module import Module, Parameter

__all__ = ["RNN", "LSTM", "GRU", "LastStep", "TimeDistributed"]

_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _positive_int(value, name: str, cls: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{cls}: {name} must be a positive integer, got {value!r}")
    return int(value)


class _RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU (see the module docstring)."""

    def __init__(self, mode: str, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=True, dropout=0.0, bidirectional=False, rng=None,
                 dtype=np.float32):
        super().__init__()
        cls = type(self).__name__
        self.mode = mode
        self.input_size = _positive_int(input_size, "input_size", cls)
        self.hidden_size = _positive_int(hidden_size, "hidden_size", cls)
        self.num_layers = _positive_int(num_layers, "num_layers", cls)
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) \
                or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{cls}: dropout must be a number in [0, 1), got {dropout!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"{cls}: dtype must be float32 or float64, got {dtype}")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self._rng = get_rng(rng)
        g = _GATES[mode]
        h = self.hidden_size
        k = 1.0 / math.sqrt(h)
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else h * self.num_directions
            for d in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                shapes = [("weight_ih", (g * h, in_size)), ("weight_hh", (g * h, h))]
                if self.bias:
                    shapes += [("bias_ih", (g * h,)), ("bias_hh", (g * h,))]
                for name, shape in shapes:
                    data = self._rng.uniform(-k, k, size=shape).astype(dtype)
                    setattr(self, name + sfx, Parameter(data))
        self.state = None
        self.grad_state = None
        self._caches = {}
        self._fwd = None

    # -- helpers ------------------------------------------------------------
    def _params(self, layer: int, d: int):
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        w_ih = getattr(self, "weight_ih" + sfx)
        w_hh = getattr(self, "weight_hh" + sfx)
        b_ih = getattr(self, "bias_ih" + sfx) if self.bias else None
        b_hh = getattr(self, "bias_hh" + sfx) if self.bias else None
        return w_ih, w_hh, b_ih, b_hh

    def _cache(self, layer, d, n, t, in_size, dtype):
        key = (layer, d)
        c = self._caches.get(key)
        if c is None or c["xh"].shape[0] != n * t or c["xh"].dtype != dtype:
            c = F.rnn_cache(self.mode, n, t, in_size, self.hidden_size, dtype)
            self._caches[key] = c
        return c

    def _check_state_part(self, s, name, n, dtype):
        cls = type(self).__name__
        shape = (self.num_layers * self.num_directions, n, self.hidden_size)
        if not isinstance(s, np.ndarray):
            raise TypeError(f"{cls}: {name} must be a numpy.ndarray of shape {shape}, "
                            f"got {type(s).__name__}")
        if s.shape != shape:
            raise ValueError(f"{cls}: {name} must have shape {shape} "
                             f"(num_layers*num_directions, batch, hidden_size), got {s.shape}")
        if s.dtype != dtype:
            raise TypeError(f"{cls}: {name} must be {dtype} like the parameters, got {s.dtype}")

    def _split_state(self, state, n, dtype, what="state"):
        """(h, c) arrays or None from the user's structure; validated."""
        cls = type(self).__name__
        if state is None:
            return None, None
        if self.mode == "lstm":
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError(f"{cls}: {what} must be a tuple (h, c) for an LSTM, "
                                f"got {type(state).__name__}")
            h, c = state
            if h is not None:
                self._check_state_part(h, f"{what}[0] (h)", n, dtype)
            if c is not None:
                self._check_state_part(c, f"{what}[1] (c)", n, dtype)
            return h, c
        if isinstance(state, (tuple, list)):
            raise TypeError(f"{cls}: {what} must be a single array h for {cls}, got a "
                            f"{type(state).__name__}")
        self._check_state_part(state, what, n, dtype)
        return state, None

    # -- computation ----------------------------------------------------------
    def forward(self, x, state=None, lengths=None):
        """``x (N, T, input_size)`` (``(T, N, ...)`` unless batch_first) -> ``(N, T, D*hidden)``.

        Caches per layer and direction: the layer input, gates and previous
        states (``rnn_cache``). Sets ``self.state`` to the final state.
        """
        cls = type(self).__name__
        dtype = self.weight_hh_l0.data.dtype
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{cls}: x must be a numpy.ndarray, got {type(x).__name__}")
        layout = "(N, T, input_size)" if self.batch_first else "(T, N, input_size)"
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{cls}: x must have shape {layout} with input_size="
                             f"{self.input_size}, got {x.shape}")
        if x.dtype != dtype:
            raise TypeError(f"{cls}: x must be {dtype} like the parameters, got {x.dtype} "
                            f"(cast with x.astype(np.{dtype.name}))")
        if not np.isfinite(x).all():
            raise ValueError(f"{cls}: x contains NaN or infinity")
        x = np.ascontiguousarray(x)
        n, t = (x.shape[0], x.shape[1]) if self.batch_first else (x.shape[1], x.shape[0])
        h0, c0 = self._split_state(state, n, dtype)
        lengths = F.as_lengths(lengths, n, t, cls)
        nd, hid = self.num_directions, self.hidden_size
        lstm = self.mode == "lstm"
        # Own copies of the initial state: the caller's arrays may be our own
        # previous h_n buffers (a carried state), which the kernels overwrite.
        if h0 is not None:
            buf = self._scratch("h0", h0.shape, dtype)
            np.copyto(buf, h0)
            h0 = buf
        if c0 is not None:
            buf = self._scratch("c0", c0.shape, dtype)
            np.copyto(buf, c0)
            c0 = buf
        sshape = (self.num_layers * nd, n, hid)
        h_n = self._scratch("h_n", sshape, dtype)
        c_n = self._scratch("c_n", sshape, dtype) if lstm else None
        inputs, masks = [], []
        inp = x
        for layer in range(self.num_layers):
            oshape = (n, t, nd * hid) if self.batch_first else (t, n, nd * hid)
            out = self._scratch(f"y{layer}", oshape, dtype)
            for d in range(nd):
                k = layer * nd + d
                w_ih, w_hh, b_ih, b_hh = self._params(layer, d)
                F.rnn_forward(self.mode, inp, w_ih.data, w_hh.data,
                              b_ih.data if b_ih is not None else None,
                              b_hh.data if b_hh is not None else None,
                              h0[k] if h0 is not None else None,
                              c0[k] if c0 is not None else None, lengths,
                              batch_first=self.batch_first, reverse=bool(d), y=out,
                              y_col=d * hid, h_n=h_n[k], c_n=c_n[k] if lstm else None,
                              cache=self._cache(layer, d, n, t, inp.shape[2], dtype))
            inputs.append(inp)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                seed = int(self._rng.integers(0, 2**63))  # the mask is a hash of (seed, index)
                masks.append(seed)
                inp = F.dropout(out, self.dropout, seed=seed,
                                out=self._scratch(f"drop{layer}", out.shape, dtype))
            else:
                masks.append(None)
                inp = out
        self._fwd = (inputs, masks, lengths, n, t, dtype)
        self.state = (h_n, c_n) if lstm else h_n
        return inp

    # -- in a graph model: the state is an input (state=) and an output (self.state) --
    _graph_kwargs = ("state",)

    def _graph_outputs(self):
        """Recorded after ``y``: the final state's arrays (h_n; for LSTM h_n, c_n)."""
        return list(self.state) if self.mode == "lstm" else [self.state]

    def _graph_backward(self, out_grads, need):
        """Gradients of (x, initial state arrays...) from those of (y, h_n[, c_n])."""
        gy, gstate = out_grads[0], out_grads[1:]
        grad_state = None
        if any(g is not None for g in gstate):
            parts = self._graph_outputs()
            full = [g if g is not None else np.zeros_like(p) for g, p in zip(gstate, parts)]
            grad_state = tuple(full) if self.mode == "lstm" else full[0]
        dx = self._backward(gy, grad_state, need[0])
        if len(need) == 1:
            return (dx,)
        gs = self.grad_state
        return (dx,) + (tuple(gs) if self.mode == "lstm" else (gs,))

    def backward(self, grad_out, grad_state=None):
        """Gradient of ``x`` from ``grad_out (N, T, D*hidden)`` (None: zero) and
        ``grad_state`` (gradient of ``self.state``; None: zero).

        Accumulates every weight gradient; leaves the gradient of the initial
        state in ``self.grad_state``.
        """
        return self._backward(grad_out, grad_state, True)

    def backward_params(self, grad_out, grad_state=None) -> None:
        """``backward`` without the input gradient (skips the first layer's dX GEMM)."""
        self._backward(grad_out, grad_state, False)

    def _backward(self, grad_out, grad_state, need_input_grad):
        cls = type(self).__name__
        if self._fwd is None:
            raise RuntimeError(f"{cls}.backward called before forward")
        inputs, masks, lengths, n, t, dtype = self._fwd
        nd, hid = self.num_directions, self.hidden_size
        lstm = self.mode == "lstm"
        if grad_out is not None:
            oshape = (n, t, nd * hid) if self.batch_first else (t, n, nd * hid)
            if not isinstance(grad_out, np.ndarray):
                raise TypeError(f"{cls}: grad_out must be a numpy.ndarray, "
                                f"got {type(grad_out).__name__}")
            if grad_out.shape != oshape:
                raise ValueError(f"{cls}: grad_out must have shape {oshape}, got "
                                 f"{grad_out.shape}")
            if grad_out.dtype != dtype:
                raise TypeError(f"{cls}: grad_out must be {dtype}, got {grad_out.dtype}")
            grad_out = np.ascontiguousarray(grad_out)
        dh_n, dc_n = self._split_state(grad_state, n, dtype, "grad_state")
        if dh_n is not None:
            dh_n = np.ascontiguousarray(dh_n)
        if dc_n is not None:
            dc_n = np.ascontiguousarray(dc_n)
        sshape = (self.num_layers * nd, n, hid)

        def grad_of(p):  # a frozen weight's gradient lands in a throwaway buffer, not p.grad
            if p is None:
                return None
            if p.requires_grad:
                return p.grad
            return self._scratch(f"frozen_grad_{id(p)}", p.shape, p.dtype)
        dh0 = self._scratch("dh0", sshape, dtype)
        dc0 = self._scratch("dc0", sshape, dtype) if lstm else None
        dy = grad_out
        dx = None
        for layer in reversed(range(self.num_layers)):
            inp = inputs[layer]
            need_dx = layer > 0 or need_input_grad
            dx = self._scratch(f"dx{layer}", inp.shape, dtype) if need_dx else None
            for d in range(nd):
                k = layer * nd + d
                w_ih, w_hh, b_ih, b_hh = self._params(layer, d)
                F.rnn_backward(self.mode, inp, w_ih.data, w_hh.data,
                               self._caches[(layer, d)], dy,
                               dh_n[k] if dh_n is not None else None,
                               dc_n[k] if dc_n is not None else None, lengths,
                               dw_ih=grad_of(w_ih), dw_hh=grad_of(w_hh),
                               db_ih=grad_of(b_ih), db_hh=grad_of(b_hh),
                               dy_col=d * hid, batch_first=self.batch_first, reverse=bool(d),
                               dx=dx, need_dx=need_dx, dx_accumulate=d > 0, dh0=dh0[k],
                               dc0=dc0[k] if lstm else None)
            if layer > 0 and masks[layer - 1] is not None:
                dx = F.dropout_backward(dx, self.dropout, masks[layer - 1],
                                        out=self._scratch(f"ddrop{layer}", dx.shape, dtype))
            dy = dx
        self.grad_state = (dh0, dc0) if lstm else dh0
        return dx

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "rnn_relu":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if not self.batch_first:
            s += ", batch_first=False"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(_RNNBase):
    """Elman RNN: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, act tanh or relu.

    This is the textbook ``h_t = σ(W [h_{t-1}; x_t] + b)`` with ``W = [W_hh | W_ih]``
    split as PyTorch stores it and ``b = b_ih + b_hh``. Parameters per layer ``l``
    (``_reverse`` suffix for the backward direction): ``weight_ih_l{l} (hidden,
    in)``, ``weight_hh_l{l} (hidden, hidden)``, ``bias_ih_l{l}``, ``bias_hh_l{l}
    (hidden,)``, all drawn from U(-1/sqrt(hidden), 1/sqrt(hidden)).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=True, dropout=0.0, bidirectional=False, rng=None,
                 dtype=np.float32):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("rnn_" + nonlinearity, input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, rng, dtype)
        self.nonlinearity = nonlinearity


class LSTM(_RNNBase):
    """LSTM with PyTorch's equations and layout (gates stacked i, f, g, o in 4*hidden rows).

    ``c_t = f ⊙ c_{t-1} + i ⊙ g``, ``h_t = o ⊙ tanh(c_t)``. ``state`` is ``(h0, c0)``;
    ``self.state`` is ``(h_n, c_n)``, each ``(num_layers*D, N, hidden)``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=True,
                 dropout=0.0, bidirectional=False, rng=None, dtype=np.float32):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, rng, dtype)


class GRU(_RNNBase):
    """GRU with PyTorch's formulation (gates r, z, n; reset applied after the hidden product).

    ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``, ``h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=True,
                 dropout=0.0, bidirectional=False, rng=None, dtype=np.float32):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, rng, dtype)


class LastStep(Module):
    """Many-to-one head: ``(N, T, F) -> (N, F)``, the last step or, with ``lengths``, the
    last valid step ``x[n, lengths[n]-1]``. Fits in ``Sequential`` after a recurrent layer.

    For a bidirectional layer the reverse half of the last step has seen only one step;
    use the layer's ``state`` there instead.
    """

    def __init__(self, batch_first: bool = True):
        super().__init__()
        self.batch_first = bool(batch_first)
        self._fwd = None

    def forward(self, x, lengths=None):
        if not isinstance(x, np.ndarray) or x.ndim != 3:
            raise ValueError(f"LastStep: x must be a 3-D array (N, T, features), got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        xb = x if self.batch_first else x.transpose(1, 0, 2)
        n, t, f = xb.shape
        if t == 0:
            raise ValueError("LastStep: x has no time steps (T = 0)")
        lengths = F.as_lengths(lengths, n, t, "LastStep")
        if lengths is not None and n and lengths.min() < 1:
            raise ValueError("LastStep: every length must be at least 1")
        idx = (np.full(n, t - 1, np.int64) if lengths is None else lengths - 1)
        out = self._scratch("out", (n, f), x.dtype)
        np.copyto(out, xb[np.arange(n), idx])
        self._fwd = (x.shape, idx, x.dtype)
        return out

    def backward(self, grad_out):
        shape, idx, dtype = self._fwd
        dx = self._scratch("dx", shape, dtype)
        dx.fill(0)
        dxb = dx if self.batch_first else dx.transpose(1, 0, 2)
        dxb[np.arange(len(idx)), idx] = grad_out
        return dx

    def extra_repr(self) -> str:
        return "" if self.batch_first else "batch_first=False"


class TimeDistributed(Module):
    """Applies ``module`` to every time step: ``(N, T, ...) -> (N, T, ...)``, by folding the
    first two axes into the batch (many-to-many heads: ``TimeDistributed(Linear(h, k))``)."""

    def __init__(self, module: Module):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"TimeDistributed: module must be a Module, got "
                            f"{type(module).__name__}")
        self.module = module
        self._lead = None

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 3:
            raise ValueError(f"TimeDistributed: x must be at least 3-D (N, T, ...), got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        self._lead = x.shape[:2]
        y = self.module(np.ascontiguousarray(x).reshape((-1,) + x.shape[2:]))
        return y.reshape(self._lead + y.shape[1:])

    def backward(self, grad_out):
        g = np.ascontiguousarray(grad_out).reshape((-1,) + grad_out.shape[2:])
        inner = self.module
        dx = inner.backward(g) if type(inner)._leaf else inner.backward(g, input_grad=True)
        return None if dx is None else dx.reshape(self._lead + dx.shape[1:])
