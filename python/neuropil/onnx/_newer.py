"""Converters of the layers added after the exporter: the parametrised activations
(LeakyReLU, ELU, GELU, Softplus), BatchNorm1d/2d, Upsample and Dropout2d.

Each is registered only when its class exists in this build of ``neuropil.nn``, so the
exporter works on either side of those layers' arrival. ONNX operators (opset 17):
LeakyRelu, Elu, Erf/Tanh/Mul/Add (GELU has no operator before opset 20), Softplus,
Where, Greater, Div, BatchNormalization (running statistics) or ReduceMean/Sub/Sqrt
(batch statistics), Resize, Unsqueeze/Squeeze, Shape/Slice/Concat.
"""
from __future__ import annotations

import math

import numpy as np

from ._registry import register_existing as _register_existing


def _f32(ctx, value, hint):
    return ctx.constant(np.array(value, np.float32), hint)


@_register_existing("LeakyReLU")
def _leaky_relu(ctx, layer, inputs, output):
    return ctx.node("LeakyRelu", [inputs[0].name], alpha=float(layer.negative_slope))


@_register_existing("ELU")
def _elu(ctx, layer, inputs, output):
    return ctx.node("Elu", [inputs[0].name], alpha=float(layer.alpha))


@_register_existing("GELU")
def _gelu(ctx, layer, inputs, output):
    x = inputs[0].name
    if layer.approximate == "tanh":  # x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = ctx.node("Mul", [ctx.node("Mul", [x, x], "x2"), x], "x3")
        inner = ctx.node("Add", [x, ctx.node("Mul", [cube, _f32(ctx, 0.044715, "c")])])
        t = ctx.node("Tanh", [ctx.node("Mul", [inner, _f32(ctx, math.sqrt(2 / math.pi), "k")])])
    elif layer.approximate == "none":  # x/2 (1 + erf(x / sqrt 2))
        t = ctx.node("Erf", [ctx.node("Mul", [x, _f32(ctx, 1 / math.sqrt(2), "rsqrt2")])])
    else:
        raise ctx.refuse(layer, f"approximate={layer.approximate!r} is not 'none' or 'tanh'")
    half_x = ctx.node("Mul", [x, _f32(ctx, 0.5, "half")], "half_x")
    return ctx.node("Mul", [half_x, ctx.node("Add", [t, _f32(ctx, 1.0, "one")])])


@_register_existing("Softplus")
def _softplus(ctx, layer, inputs, output):
    # log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's rule)
    x = inputs[0].name
    bx = ctx.node("Mul", [x, _f32(ctx, layer.beta, "beta")], "beta_x") \
        if layer.beta != 1 else x
    soft = ctx.node("Softplus", [bx])
    if layer.beta != 1:
        soft = ctx.node("Div", [soft, _f32(ctx, layer.beta, "beta")])
    linear = ctx.node("Greater", [bx, _f32(ctx, layer.threshold, "threshold")], "linear")
    return ctx.node("Where", [linear, x, soft])


@_register_existing("BatchNorm1d", "BatchNorm2d")
def _batch_norm(ctx, layer, inputs, output):
    x = inputs[0]
    c = layer.num_features
    if layer.affine:
        scale, shift = ctx.param(layer, "weight"), ctx.param(layer, "bias")
    else:
        scale, shift = _f32(ctx, np.ones(c), "ones"), _f32(ctx, np.zeros(c), "zeros")
    if layer.track_running_stats:  # eval form: the running statistics
        return ctx.node("BatchNormalization", [x.name, scale, shift,
                                               ctx.param(layer, "running_mean"),
                                               ctx.param(layer, "running_var")],
                        epsilon=float(layer.eps))
    # no running statistics: eval mode normalises with the batch's own mean and biased
    # variance, as in training
    axes = [0] + list(range(2, x.example.ndim))
    mean = ctx.node("ReduceMean", [x.name], "mean", axes=axes, keepdims=1)
    centred = ctx.node("Sub", [x.name, mean], "centred")
    var = ctx.node("ReduceMean", [ctx.node("Mul", [centred, centred])], "var", axes=axes,
                   keepdims=1)
    std = ctx.node("Sqrt", [ctx.node("Add", [var, _f32(ctx, layer.eps, "eps")])], "std")
    per_channel = [c] + [1] * (x.example.ndim - 2)
    shape = ctx.constant(per_channel, "channel_shape", np.int64)
    y = ctx.node("Div", [centred, std])
    y = ctx.node("Mul", [y, ctx.node("Reshape", [scale, shape])])
    return ctx.node("Add", [y, ctx.node("Reshape", [shift, shape])])


@_register_existing("Upsample")
def _upsample(ctx, layer, inputs, output):
    x = inputs[0]
    nd = x.example.ndim
    name = x.name
    if nd == 3:  # (N, C, L): resized as (N, C, 1, L), the extra axis kept at size 1
        name = ctx.node("Unsqueeze", [name, ctx.constant([2], "axis", np.int64)], "as_4d")
    if layer.mode == "nearest":
        # PyTorch's "nearest": source index floor(dst / scale)
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                     nearest_mode="floor")
    else:
        attrs = dict(mode="linear", coordinate_transformation_mode=(
            "align_corners" if layer.align_corners else "half_pixel"))
    spatial_out = output.shape[2:]
    if layer.scale_factor is not None and not layer.recompute_scale_factor:
        # PyTorch maps coordinates with the given factor itself, not out/in: so does ONNX
        # when it gets scales (and floor(in * scale) is the output size in both)
        factors = layer.scale_factor if isinstance(layer.scale_factor, tuple) \
            else (layer.scale_factor,) * (nd - 2)
        scales = [1.0, 1.0] + ([1.0] if nd == 3 else []) + [float(f) for f in factors]
        resized = ctx.node("Resize", [name, "", ctx.constant(np.array(scales, np.float32),
                                                             "scales")], **attrs)
    else:  # a size (or recomputed factors): coordinates follow in/out, ONNX's sizes
        lead = ctx.node("Slice", [ctx.node("Shape", [name]), ctx.constant([0], "start", np.int64),
                                  ctx.constant([2], "end", np.int64)], "lead")
        tail = ([1] if nd == 3 else []) + [int(s) for s in spatial_out]
        sizes = ctx.node("Concat", [lead, ctx.constant(tail, "tail", np.int64)], "sizes",
                         axis=0)
        resized = ctx.node("Resize", [name, "", "", sizes], **attrs)
    if nd == 3:
        return ctx.node("Squeeze", [resized, ctx.constant([2], "axis", np.int64)])
    return resized


@_register_existing("Dropout2d")
def _dropout2d(ctx, layer, inputs, output):  # eval form: the identity
    return ctx.node("Identity", [inputs[0].name])
