"""Converters of the feed-forward layers and containers (one function per layer class).

ONNX operators used (opset 17): Gemm, MatMul, Add, Sum, Concat, Transpose, Conv, MaxPool,
AveragePool, Relu, Sigmoid, Tanh, Softmax, Flatten, Reshape, Identity, Gather, Cast.
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ._registry import register, register_existing


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
                    dilations=list(layer.dilation), group=int(getattr(layer, "groups", 1)))


@register_existing("ConvTranspose2d")
def _conv_transpose2d(ctx, layer, inputs, output):
    # the same weight layout (in, out/groups, kH, kW) and output-size formula as ONNX's;
    # forward(x, output_size=...) is an argument a Sequential never passes (and a graph
    # model's replay check refuses)
    ph, pw = layer.padding
    ins = [inputs[0].name, ctx.param(layer, "weight")]
    if layer.bias is not None:
        ins.append(ctx.param(layer, "bias"))
    return ctx.node("ConvTranspose", ins, kernel_shape=list(layer.kernel_size),
                    strides=list(layer.stride), pads=[ph, pw, ph, pw],
                    dilations=list(layer.dilation), group=int(layer.groups),
                    output_padding=list(layer.output_padding))


def _pool_attrs(ctx, layer, x, output):
    """Attributes giving PyTorch's windows. ONNX's ceil_mode (opset 17) rounds up without
    PyTorch's rule that the last window must start inside the input or its left padding;
    where that rule removes the window, floor mode gives the same windows. An axis that
    needs rounding up beside one that does not gets explicit end padding instead (max
    pooling only: padding would count in an average)."""
    ph, pw = layer.padding
    kinds = set()  # per axis: which ONNX rounding gives PyTorch's output size
    for n, k, s, p, o in zip(x.example.shape[2:], layer.kernel_size, layer.stride,
                             layer.padding, output.shape[2:]):
        floor, ceil = (n + 2 * p - k) // s + 1, -(-(n + 2 * p - k) // s) + 1
        if floor != ceil:
            kinds.add("floor" if o == floor else "ceil")
    attrs = dict(kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                 pads=[ph, pw, ph, pw], ceil_mode=int(kinds == {"ceil"}))
    if kinds == {"floor", "ceil"}:
        if isinstance(layer, nn.AvgPool2d):
            raise ctx.refuse(layer, f"with ceil_mode on an input of {x.example.shape[2:]}, "
                                    f"PyTorch's rule rounds one axis up and the other down, "
                                    f"which ONNX's AveragePool cannot express")
        for i, (n, k, s, p, o) in enumerate(zip(x.example.shape[2:], layer.kernel_size,
                                                layer.stride, layer.padding,
                                                output.shape[2:])):
            if (n + 2 * p - k) // s + 1 < o:  # pad the end: floor mode reaches the last window
                attrs["pads"][2 + i] = (o - 1) * s + k - n - p
    return attrs


@register(nn.MaxPool2d)
def _max_pool2d(ctx, layer, inputs, output):
    # ONNX pads max pooling with -inf, as neuropil and PyTorch do
    return ctx.node("MaxPool", [inputs[0].name], **_pool_attrs(ctx, layer, inputs[0], output))


@register(nn.AvgPool2d)
def _avg_pool2d(ctx, layer, inputs, output):
    # a window never leaves the padded image but in ceil mode, where ONNX Runtime clips
    # the divisor as PyTorch does; count_include_pad=1 divides by the window inside it
    return ctx.node("AveragePool", [inputs[0].name],
                    **_pool_attrs(ctx, layer, inputs[0], output),
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
