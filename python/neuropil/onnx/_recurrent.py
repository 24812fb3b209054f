"""Converters of the recurrent layers (ONNX RNN, LSTM, GRU) and their helpers.

neuropil (like PyTorch) stacks the gates of ``weight_ih_l{k}`` as LSTM i, f, g, o and
GRU r, z, n; ONNX wants LSTM i, o, f, c and GRU z, r, h. The initializers stay in
neuropil's layout under their ``state_dict`` names (so ``load_weights`` reads them back by
name) and the graph reorders them with a Gather on constant row indices; ONNX Runtime
folds that into the weights when it loads the model. GRU uses ``linear_before_reset=1``
(the reset gate multiplies the hidden product after its bias, PyTorch's formulation).

Layouts: ONNX runs time-major ``X (T, N, F)`` and returns ``Y (T, D, N, H)``; one ONNX
node is one layer, so ``num_layers > 1`` chains nodes, each layer's ``Y`` reshaped to
``(T, N, D*H)``. ``batch_first`` inputs are transposed in and out. In a ``Sequential``
the initial state is zero; in a graph model the state given as ``state=`` is an input
(each layer's rows sliced off) and the final state an output (the layers' ``Y_h``/``Y_c``
concatenated back to ``(num_layers*D, N, H)``). ``lengths=`` is not exported.
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ._graph import Value
from ._registry import register

# ONNX's gate order as indices into neuropil's stacked gates
_GATE_ORDER = {"lstm": [0, 3, 1, 2],   # i f g o -> i o f c
               "gru": [1, 0, 2],       # r z n   -> z r h
               "rnn_tanh": [0], "rnn_relu": [0]}
_OP = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}


def _gate_rows(order, hidden: int, blocks: int) -> np.ndarray:
    """Row indices that reorder the gates in each of ``blocks`` stacked (G*hidden) blocks."""
    g = len(order)
    one = np.concatenate([np.arange(k * hidden, (k + 1) * hidden) for k in order])
    return np.concatenate([one + b * g * hidden for b in range(blocks)]).astype(np.int64)


def _stacked(ctx, layer, names, hint, shape):
    """Concatenate the given parameters along their rows, reorder the gates of each block
    into ONNX's order and reshape to ``shape`` (D, G*H, ...)."""
    tensors = [ctx.param(layer, n) for n in names]
    x = tensors[0] if len(tensors) == 1 else ctx.node("Concat", tensors, hint + "_cat", axis=0)
    order = _GATE_ORDER[layer.mode]
    if order != list(range(len(order))):
        rows = _gate_rows(order, layer.hidden_size, len(names))
        x = ctx.node("Gather", [x, ctx.constant(rows, hint + "_gates")], hint + "_gates", axis=0)
    return ctx.node("Reshape", [x, ctx.constant(shape, hint + "_shape", np.int64)], hint)


def _run_recurrent(layer, examples):
    """``layer(x, state=...)`` from ``[x, h0]`` / ``[x, h0, c0]`` (a graph model routes the
    state as inputs); returns ``[y, h_n]`` / ``[y, h_n, c_n]``."""
    x, *state = examples
    lstm = layer.mode == "lstm"
    if state and len(state) != (2 if lstm else 1):
        raise ValueError(f"neuropil.onnx.export: {type(layer).__name__} got {len(state)} state "
                         f"array(s); the exporter takes " + ("(h0, c0)" if lstm else "h0"))
    y = layer(x, state=(tuple(state) if lstm else state[0]) if state else None)
    return [y] + list(layer._graph_outputs())


@register(nn.RNN, nn.LSTM, nn.GRU, run=_run_recurrent)
def _recurrent(ctx, layer, inputs, outputs):
    x = inputs[0]
    d = layer.num_directions
    h = layer.hidden_size
    g = len(_GATE_ORDER[layer.mode])
    lstm = layer.mode == "lstm"
    suffixes = ["", "_reverse"][:d]
    seq = ctx.node("Transpose", [x.name], "time_major", perm=[1, 0, 2]) \
        if layer.batch_first else x.name
    attrs = {"hidden_size": h, "direction": "bidirectional" if d == 2 else "forward"}
    if layer.mode == "gru":
        attrs["linear_before_reset"] = 1
    elif not lstm:
        attrs["activations"] = ["Relu" if layer.mode == "rnn_relu" else "Tanh"] * d
    state_in = [v.name for v in inputs[1:]]          # h0 (, c0): (num_layers*D, N, H)
    state_out: list = [[] for _ in range(2 if lstm else 1)]
    for k in range(layer.num_layers):
        in_size = layer.input_size if k == 0 else d * h
        w = _stacked(ctx, layer, [f"weight_ih_l{k}{s}" for s in suffixes], f"W_l{k}",
                     [d, g * h, in_size])
        r = _stacked(ctx, layer, [f"weight_hh_l{k}{s}" for s in suffixes], f"R_l{k}",
                     [d, g * h, h])
        ins = [seq, w, r, ""]
        if layer.bias:
            # ONNX's B is [W_b, R_b] per direction: (D, 2*G*H)
            names = [n for s in suffixes for n in (f"bias_ih_l{k}{s}", f"bias_hh_l{k}{s}")]
            ins[3] = _stacked(ctx, layer, names, f"B_l{k}", [d, 2 * g * h])
        if state_in:  # sequence_lens, then this layer's rows of each initial state
            ins.append("")
            ins += [_layer_rows(ctx, s, k, d, layer.num_layers) for s in state_in]
        while ins[-1] == "":
            ins.pop()
        outs = ctx.node(_OP[layer.mode], ins, f"Y_l{k}", outputs=3 if lstm else 2, **attrs)
        for part, name in zip(state_out, outs[1:]):                          # (D, N, H)
            part.append(name)
        y = ctx.node("Transpose", [outs[0]], f"Y_l{k}_tndh", perm=[0, 2, 1, 3])  # (T, N, D, H)
        seq = ctx.node("Reshape", [y, ctx.constant([0, 0, -1], "shape", np.int64)],
                       f"out_l{k}")                                          # (T, N, D*H)
    y = ctx.node("Transpose", [seq], "batch_major", perm=[1, 0, 2]) if layer.batch_first \
        else ctx.node("Identity", [seq])
    # final states (num_layers*D, N, H), layer-major as neuropil (and PyTorch) lay them out
    states = [part[0] if len(part) == 1 else ctx.node("Concat", part, "state", axis=0)
              for part in state_out]
    return (y, *states)


def _layer_rows(ctx, state: str, k: int, d: int, layers: int) -> str:
    """Rows ``k*d .. (k+1)*d`` of a ``(num_layers*D, N, H)`` state: layer ``k``'s part."""
    if layers == 1:
        return state
    return ctx.node("Slice", [state, ctx.constant([k * d], "start", np.int64),
                              ctx.constant([(k + 1) * d], "end", np.int64),
                              ctx.constant([0], "axis", np.int64)], f"state_l{k}")


@register(nn.LastStep)
def _last_step(ctx, layer, inputs, output):
    # x[:, -1] (x[-1] when time-major); lengths= is a forward argument a Sequential never
    # passes, so the exported graph always takes the last step
    axis = 1 if layer.batch_first else 0
    last = ctx.constant(np.array(-1, np.int64), "last")
    return ctx.node("Gather", [inputs[0].name, last], axis=axis)


@register(nn.TimeDistributed)
def _time_distributed(ctx, layer, inputs, output):
    x = inputs[0]
    rest = list(x.example.shape[2:])
    folded = ctx.node("Reshape", [x.name, ctx.constant([-1] + rest, "shape", np.int64)],
                      "folded")
    example = np.ascontiguousarray(x.example).reshape((-1,) + x.example.shape[2:])
    inner = ctx.convert(layer.module, [Value(folded, example)])
    # unfold with the input's own (N, T): both may be dynamic
    lead = ctx.node("Slice", [ctx.node("Shape", [x.name]), ctx.constant([0], "start", np.int64),
                              ctx.constant([2], "end", np.int64)], "lead")
    tail = ctx.constant(list(inner.example.shape[1:]), "tail", np.int64)
    shape = ctx.node("Concat", [lead, tail], "unfolded_shape", axis=0)
    return ctx.node("Reshape", [inner.name, shape], "unfolded")
