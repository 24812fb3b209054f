"""Converters of the feed-forward layers and containers (one function per layer class).

ONNX operators used (opset 17): Gemm, MatMul, Add, Sum, Concat, Transpose, Conv, MaxPool,
AveragePool, Relu, Sigmoid, Tanh, Softmax, Flatten, Reshape, Identity, Gather, Cast.
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ._registry import register


@register(nn.Sequential)
def _sequential(ctx, seq, inputs, output):
    value = inputs[0]
    for child in seq:
        value = ctx.convert(child, [value])
    return value.name


@register(nn.Linear)
def _linear(ctx, layer, inputs, output):
    x = inputs[0]
    w = ctx.param(layer, "weight")
    b = ctx.param(layer, "bias") if layer.bias is not None else None
    if x.example.ndim == 2:  # y = x W^T + b in one Gemm
        return ctx.node("Gemm", [x.name, w] + ([b] if b else []), transB=1)
    # (..., in) inputs: Gemm is 2-D only; MatMul broadcasts over the leading axes
    wt = ctx.node("Transpose", [w], "weight_t", perm=[1, 0])
    y = ctx.node("MatMul", [x.name, wt])
    return ctx.node("Add", [y, b]) if b else y


def _elementwise(op):
    def convert(ctx, layer, inputs, output):
        return ctx.node(op, [inputs[0].name])
    convert.__name__ = f"_{op.lower()}"
    return convert


register(nn.ReLU)(_elementwise("Relu"))
register(nn.Sigmoid)(_elementwise("Sigmoid"))
register(nn.Tanh)(_elementwise("Tanh"))
# Dropout in eval form, and Identity: the input unchanged
register(nn.Dropout, nn.Identity)(_elementwise("Identity"))


@register(nn.Softmax)
def _softmax(ctx, layer, inputs, output):
    return ctx.node("Softmax", [inputs[0].name], axis=layer.dim)


@register(nn.Flatten)
def _flatten(ctx, layer, inputs, output):
    x = inputs[0]
    nd = x.example.ndim
    if nd == 0:
        return ctx.node("Reshape", [x.name, ctx.constant([1], "shape", np.int64)])
    s = layer.start_dim % nd
    e = layer.end_dim % nd
    if s == 1 and e == nd - 1:
        return ctx.node("Flatten", [x.name], axis=1)
    # axes before start_dim are copied (0), the flattened run is inferred (-1), the rest
    # are static: no dimension of the example is written unless it follows end_dim
    shape = [0] * s + [-1] + list(x.example.shape[e + 1:])
    return ctx.node("Reshape", [x.name, ctx.constant(shape, "shape", np.int64)])


@register(nn.Conv2d)
def _conv2d(ctx, layer, inputs, output):
    ph, pw = layer.padding
    ins = [inputs[0].name, ctx.param(layer, "weight")]
    if layer.bias is not None:
        ins.append(ctx.param(layer, "bias"))
    return ctx.node("Conv", ins, kernel_shape=list(layer.kernel_size),
                    strides=list(layer.stride), pads=[ph, pw, ph, pw],
                    dilations=list(layer.dilation), group=1)


def _pool_attrs(layer):
    ph, pw = layer.padding
    return dict(kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                pads=[ph, pw, ph, pw])


@register(nn.MaxPool2d)
def _max_pool2d(ctx, layer, inputs, output):
    # ONNX pads max pooling with -inf, as neuropil and PyTorch do
    return ctx.node("MaxPool", [inputs[0].name], **_pool_attrs(layer))


@register(nn.AvgPool2d)
def _avg_pool2d(ctx, layer, inputs, output):
    # without ceil_mode a window never leaves the padded image, so count_include_pad=1
    # divides by kH*kW exactly as PyTorch does
    return ctx.node("AveragePool", [inputs[0].name], **_pool_attrs(layer),
                    count_include_pad=int(layer.count_include_pad))


@register(nn.Concat)
def _concat(ctx, layer, inputs, output):
    return ctx.node("Concat", [v.name for v in inputs], axis=layer.dim)


@register(nn.Add)
def _add(ctx, layer, inputs, output):
    names = [v.name for v in inputs]
    if len(names) == 1:
        return ctx.node("Identity", names)
    return ctx.node("Add" if len(names) == 2 else "Sum", names)


@register(nn.Embedding)
def _embedding(ctx, layer, inputs, output):
    idx = inputs[0]
    name = idx.name
    if idx.example.dtype.kind != "i":  # float inputs holding whole numbers (as fit feeds)
        name = ctx.node("Cast", [name], "indices", to=7)  # TensorProto.INT64
    return ctx.node("Gather", [ctx.param(layer, "weight"), name], axis=0)
