"""``model.summary(input_shape)``: each layer's output shape and parameter count."""
from __future__ import annotations

import numpy as np

from .graph import trace
from .module import Module

__all__ = ["summary"]


def _calls(model: Module, inputs):
    """(name, layer, output shapes) of every layer call in one forward, in call order
    (the traced graph of a model; a layer on its own is its only call)."""
    return [(call.name or ("(reshape)" if call.module is None else ""), call.module,
             call.shapes) for call in trace(model, *inputs).calls]


def summary(model: Module, input_shape, dtype=None, print_fn=print) -> dict:
    """Print a table of layers, output shapes and parameter counts; return it as a dict.

    ``input_shape`` is one sample's shape without the batch, e.g. ``(3, 6, 6)``
    for a 6×6 RGB image in NCHW (a list of such tuples for a model with several
    inputs); shapes are printed with the batch as ``N``. A zero batch of one sample
    runs through the model in eval mode (the training flag is restored), and every
    layer call is listed in call order: a layer used twice appears twice, its
    parameters counted on the first row only. Returns ``{"layers": [(name, type,
    shape, params)], "total_params": int, "trainable_params": int}``.
    """
    several = (isinstance(input_shape, (list, tuple)) and len(input_shape) > 0
               and all(isinstance(s, (list, tuple)) for s in input_shape))
    shapes = list(input_shape) if several else [input_shape]
    try:
        shapes = [tuple(int(s) for s in shape) for shape in shapes]
    except TypeError:
        raise TypeError(f"summary: input_shape must be a tuple of ints (without the batch), "
                        f"or a list of them, got {input_shape!r}") from None
    if any(s < 1 for shape in shapes for s in shape):
        raise ValueError(f"summary: input_shape must be positive, got {input_shape}")
    params = model.parameters()
    if dtype is None:
        dtype = params[0].dtype if params else np.float32
    was_training = model.training
    model.eval()
    rows = []
    counted = set()
    try:
        inputs = [np.zeros((1,) + shape, dtype) for shape in shapes]
        for name, layer, out_shapes in _calls(model, inputs):
            kind = type(layer).__name__ if layer is not None else "reshape"
            count = 0
            if layer is not None and id(layer) not in counted:
                counted.add(id(layer))
                count = int(sum(p.size for p in layer.parameters()))
            if layer is not None and type(layer)._graph_outputs is not None:
                out_shapes = out_shapes[:1]  # what it returns, not its routed state
            shown = [("N",) + tuple(sh[1:]) for sh in out_shapes]
            rows.append((name or kind, kind, shown[0] if len(shown) == 1 else tuple(shown),
                         count))
    finally:
        model.train(was_training)
    total = int(sum(p.size for p in params))
    trainable = int(sum(p.size for p in params if p.requires_grad))
    def fmt(s):  # ("N", 3, 4) -> "(N, 3, 4)"; several outputs -> "(N, 3), (N, 4)"
        if s and isinstance(s[0], tuple):
            return ", ".join(fmt(part) for part in s)
        return "(" + ", ".join(str(v) for v in s) + ")"

    w0 = max([len("Layer")] + [len(f"{n} ({t})") for n, t, _, _ in rows])
    w1 = max([len("Output shape")] + [len(fmt(s)) for _, _, s, _ in rows])
    lines = [f"{'Layer':<{w0}}  {'Output shape':<{w1}}  {'Params':>10}", "-" * (w0 + w1 + 14)]
    for n, t, s, p in rows:
        lines.append(f"{n + ' (' + t + ')':<{w0}}  {fmt(s):<{w1}}  {p:>10,}")
    lines += ["-" * (w0 + w1 + 14), f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              "Input shape: " + ", ".join(fmt(("N",) + shape) for shape in shapes)]
    if print_fn is not None:
        print_fn("\n".join(lines))
    return {"layers": rows, "total_params": total, "trainable_params": trainable}


Module.summary = summary
