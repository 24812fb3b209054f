"""``model.summary(input_shape)``: each layer's output shape and parameter count."""
from __future__ import annotations

import numpy as np

from .containers import Sequential
from .module import Module

__all__ = ["summary"]


def _leaves(model: Module):
    """Layers in call order: nested Sequentials are opened, other modules kept whole."""
    if isinstance(model, Sequential):
        for name, m in model.named_children():
            for sub_name, leaf in _leaves(m):
                yield (f"{name}.{sub_name}" if sub_name else name), leaf
    else:
        yield "", model


def summary(model: Module, input_shape, dtype=None, print_fn=print) -> dict:
    """Print a table of layers, output shapes and parameter counts; return it as a dict.

    ``input_shape`` is one sample's shape without the batch, e.g. ``(3, 6, 6)``
    for a 6×6 RGB image in NCHW; shapes are printed with the batch as ``N``.
    A zero batch of one sample runs through the model in eval mode (the
    training flag is restored). Returns ``{"layers": [(name, type, shape,
    params)], "total_params": int, "trainable_params": int}``.
    """
    try:
        input_shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise TypeError(f"summary: input_shape must be a tuple of ints (without the batch), "
                        f"got {input_shape!r}") from None
    if any(s < 1 for s in input_shape):
        raise ValueError(f"summary: input_shape must be positive, got {input_shape}")
    params = model.parameters()
    if dtype is None:
        dtype = params[0].dtype if params else np.float32
    was_training = model.training
    model.eval()
    rows = []
    try:
        x = np.zeros((1,) + input_shape, dtype)
        for name, layer in _leaves(model):
            x = layer(x)
            shape = ("N",) + tuple(np.shape(x)[1:])
            rows.append((name or type(layer).__name__, type(layer).__name__, shape,
                         int(sum(p.size for p in layer.parameters()))))
    finally:
        model.train(was_training)
    total = int(sum(p.size for p in params))
    trainable = int(sum(p.size for p in params if p.requires_grad))
    fmt = lambda s: "(" + ", ".join(str(v) for v in s) + ")"  # noqa: E731
    w0 = max([len("Layer")] + [len(f"{n} ({t})") for n, t, _, _ in rows])
    w1 = max([len("Output shape")] + [len(fmt(s)) for _, _, s, _ in rows])
    lines = [f"{'Layer':<{w0}}  {'Output shape':<{w1}}  {'Params':>10}", "-" * (w0 + w1 + 14)]
    for n, t, s, p in rows:
        lines.append(f"{n + ' (' + t + ')':<{w0}}  {fmt(s):<{w1}}  {p:>10,}")
    lines += ["-" * (w0 + w1 + 14), f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Input shape: {fmt(('N',) + input_shape)}"]
    if print_fn is not None:
        print_fn("\n".join(lines))
    return {"layers": rows, "total_params": total, "trainable_params": trainable}


Module.summary = summary
