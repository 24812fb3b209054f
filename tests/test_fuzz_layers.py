"""Property-based fuzzing of every layer: constructor, forward and backward (table below).

Each row draws valid constructor arguments and a valid input shape; the layer
(float64) must give the documented output shape, match its NumPy reference
where the row has one, and pass a float64 central-difference gradient check of
the input and every parameter. Invalid constructor arguments, inputs of the
wrong rank, feature size or dtype, and gradients of the wrong shape must raise
TypeError or ValueError. A layer that lands later (BatchNorm, Upsample,
ConvTranspose2d, new activations) is one row in LAYERS.
"""
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402

from neuropil import nn  # noqa: E402
from neuropil.testing import gradcheck  # noqa: E402

import _conv_reference as CR  # noqa: E402

REFUSALS = (TypeError, ValueError)
small = st.integers(1, 6)


@dataclass
class Row:
    ctor: Callable                      # draw -> kwargs; the layer is make(**kwargs)
    make: Callable                      # kwargs -> Module
    input_shape: Callable               # (draw, kwargs) -> valid input shape
    out_shape: Callable                 # (kwargs, input shape) -> output shape
    ref: Optional[Callable] = None      # (layer, x) -> expected output (NumPy)
    bad_ctor: list = field(default_factory=list)  # kwargs updates that must be refused
    rank: Optional[int] = None          # the input rank, when fixed
    feature_axis: Optional[int] = None  # an input axis whose size is fixed by the layer
    gradcheck: bool = True
    integer_input: bool = False         # indices (Embedding)
    kink: bool = False                  # ReLU-like: keep inputs away from 0
    passthrough: bool = False           # moves data without arithmetic: any dtype goes


def _st(fn):
    return st.composite(fn)()


def _pool_out(k, s, p, shape):
    s = s or k
    return shape[:2] + ((shape[2] + 2 * p - k) // s + 1, (shape[3] + 2 * p - k) // s + 1)


def _pool_shape(draw, kw):
    k = kw["kernel_size"]
    return (draw(small), draw(small), draw(st.integers(k, k + 5)), draw(st.integers(k, k + 5)))


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _softmax(v, dim):
    z = np.exp(v - v.max(axis=dim, keepdims=True))
    return z / z.sum(axis=dim, keepdims=True)


def _elementwise(cls, fn, kink=False, passthrough=False):
    return Row(ctor=_st(lambda draw: {}), make=lambda **kw: cls(),
               input_shape=lambda draw, kw: tuple(draw(st.lists(small, min_size=1, max_size=4))),
               out_shape=lambda kw, s: s, ref=lambda layer, x: fn(x), kink=kink,
               passthrough=passthrough)


LAYERS = {
    "Linear": Row(
        ctor=_st(lambda draw: dict(in_features=draw(small), out_features=draw(small),
                                   bias=draw(st.booleans()))),
        make=lambda **kw: nn.Linear(**kw, rng=0, dtype=np.float64),
        input_shape=lambda draw, kw: (draw(small), kw["in_features"]),
        out_shape=lambda kw, s: s[:-1] + (kw["out_features"],),
        ref=lambda m, x: x @ m.weight.data.T + (0 if m.bias is None else m.bias.data),
        bad_ctor=[dict(in_features=0), dict(out_features=-1), dict(in_features=2.5),
                  dict(in_features=2**40), dict(out_features="3")],
        feature_axis=-1),
    "Conv2d": Row(
        ctor=_st(lambda draw: dict(in_channels=draw(st.integers(1, 3)),
                                   out_channels=draw(st.integers(1, 4)),
                                   kernel_size=draw(st.integers(1, 3)),
                                   stride=draw(st.integers(1, 2)), padding=draw(st.integers(0, 1)),
                                   dilation=draw(st.integers(1, 2)), bias=draw(st.booleans()))),
        make=lambda **kw: nn.Conv2d(**kw, rng=0, dtype=np.float64),
        input_shape=lambda draw, kw: (draw(st.integers(1, 3)), kw["in_channels"],
                                      draw(st.integers(5, 8)), draw(st.integers(5, 8))),
        out_shape=lambda kw, s: (s[0], kw["out_channels"]) + tuple(
            CR.out_size(v, kw["kernel_size"], kw["stride"], kw["padding"], kw["dilation"])
            for v in s[2:]),
        ref=lambda m, x: CR.conv2d_ref(x, m.weight.data, None if m.bias is None else m.bias.data,
                                       m.stride, m.padding, m.dilation),
        bad_ctor=[dict(in_channels=0), dict(out_channels=-2), dict(kernel_size=0),
                  dict(stride=0), dict(padding=-1), dict(dilation=0), dict(kernel_size=2**40),
                  dict(padding="valid!"), dict(in_channels=1.5)],
        rank=4, feature_axis=1),
    "MaxPool2d": Row(
        ctor=_st(lambda draw: dict(kernel_size=draw(st.integers(1, 3)),
                                   stride=draw(st.sampled_from([None, 1, 2])))),
        make=lambda **kw: nn.MaxPool2d(**kw),
        input_shape=_pool_shape,
        out_shape=lambda kw, s: _pool_out(kw["kernel_size"], kw["stride"], 0, s),
        ref=lambda m, x: CR.max_pool_ref(x, m.kernel_size, m.stride, m.padding)[0],
        bad_ctor=[dict(kernel_size=0), dict(kernel_size=-1), dict(stride=0),
                  dict(kernel_size=2, padding=2), dict(kernel_size=2**40)],
        rank=4),
    "AvgPool2d": Row(
        ctor=_st(lambda draw: dict(kernel_size=draw(st.integers(1, 3)),
                                   stride=draw(st.sampled_from([None, 1, 2])),
                                   count_include_pad=draw(st.booleans()))),
        make=lambda **kw: nn.AvgPool2d(**kw),
        input_shape=_pool_shape,
        out_shape=lambda kw, s: _pool_out(kw["kernel_size"], kw["stride"], 0, s),
        ref=lambda m, x: CR.avg_pool_ref(x, m.kernel_size, m.stride, m.padding,
                                         m.count_include_pad),
        bad_ctor=[dict(kernel_size=0), dict(stride=-1), dict(kernel_size=2, padding=2)],
        rank=4),
    "ReLU": _elementwise(nn.ReLU, lambda v: np.maximum(v, 0), kink=True),
    "Sigmoid": _elementwise(nn.Sigmoid, _sigmoid),
    "Tanh": _elementwise(nn.Tanh, np.tanh),
    "Identity": _elementwise(nn.Identity, lambda v: v, passthrough=True),
    "Softmax": Row(
        ctor=_st(lambda draw: dict(dim=draw(st.integers(-2, 1)))),
        make=lambda **kw: nn.Softmax(**kw),
        input_shape=lambda draw, kw: (draw(small), draw(small)),
        out_shape=lambda kw, s: s, ref=lambda m, x: _softmax(x, m.dim),
        bad_ctor=[dict(dim=1.5), dict(dim="x")]),
    "Flatten": Row(
        ctor=_st(lambda draw: {}), make=lambda **kw: nn.Flatten(),
        input_shape=lambda draw, kw: tuple(draw(st.lists(small, min_size=2, max_size=4))),
        out_shape=lambda kw, s: (s[0], int(np.prod(s[1:]))),
        ref=lambda m, x: x.reshape(x.shape[0], -1), passthrough=True),
    "Dropout": Row(
        ctor=_st(lambda draw: dict(p=draw(st.sampled_from([0.0, 0.3, 0.7])))),
        make=lambda **kw: nn.Dropout(**kw, rng=0),
        input_shape=lambda draw, kw: tuple(draw(st.lists(small, min_size=1, max_size=3))),
        out_shape=lambda kw, s: s,
        bad_ctor=[dict(p=1.0), dict(p=-0.1), dict(p="half"), dict(p=float("nan"))],
        gradcheck=False, passthrough=True),  # a new mask every forward (tested elsewhere)
    "Embedding": Row(
        ctor=_st(lambda draw: dict(num_embeddings=draw(small), embedding_dim=draw(small))),
        make=lambda **kw: nn.Embedding(**kw, rng=0, dtype=np.float64),
        input_shape=lambda draw, kw: (draw(small), draw(small)),
        out_shape=lambda kw, s: s + (kw["embedding_dim"],),
        ref=lambda m, x: m.weight.data[x.astype(np.int64)],
        bad_ctor=[dict(num_embeddings=0), dict(embedding_dim=-1), dict(num_embeddings=2**40)],
        integer_input=True),
    "LastStep": Row(
        ctor=_st(lambda draw: {}), make=lambda **kw: nn.LastStep(),
        input_shape=lambda draw, kw: (draw(small), draw(small), draw(small)),
        out_shape=lambda kw, s: (s[0], s[2]), ref=lambda m, x: x[:, -1], rank=3,
        passthrough=True),
    "TimeDistributed(Linear)": Row(
        ctor=_st(lambda draw: dict(i=draw(small), o=draw(small))),
        make=lambda i, o: nn.TimeDistributed(nn.Linear(i, o, rng=0, dtype=np.float64)),
        input_shape=lambda draw, kw: (draw(small), draw(small), kw["i"]),
        out_shape=lambda kw, s: s[:2] + (kw["o"],),
        ref=lambda m, x: x @ m.module.weight.data.T + m.module.bias.data,
        feature_axis=-1),  # any rank >= 3: (N, T, ...)
}

for _cls in ("RNN", "LSTM", "GRU"):
    LAYERS[_cls] = Row(
        ctor=_st(lambda draw: dict(input_size=draw(small), hidden_size=draw(small),
                                   num_layers=draw(st.integers(1, 2)),
                                   bidirectional=draw(st.booleans()), bias=draw(st.booleans()))),
        make=(lambda cls: lambda **kw: getattr(nn, cls)(**kw, rng=0, dtype=np.float64))(_cls),
        input_shape=lambda draw, kw: (draw(st.integers(1, 3)), draw(st.integers(1, 4)),
                                      kw["input_size"]),
        out_shape=lambda kw, s: s[:2] + ((2 if kw["bidirectional"] else 1) * kw["hidden_size"],),
        bad_ctor=[dict(input_size=0), dict(hidden_size=-1), dict(num_layers=0),
                  dict(hidden_size=2**40), dict(dropout=1.5)],
        rank=3, feature_axis=-1)

NAMES = sorted(LAYERS)


def _build(data, name):
    row = LAYERS[name]
    kw = data.draw(row.ctor, label="constructor")
    layer = row.make(**kw)
    shape = row.input_shape(data.draw, kw)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    g = np.random.default_rng(seed)
    if row.integer_input:
        x = g.integers(0, kw["num_embeddings"], shape).astype(np.int64)
    else:
        x = g.standard_normal(shape)
        if row.kink:
            x = np.where(np.abs(x) < 1e-2, 0.5, x)
    return row, kw, layer, x


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_forward_shape_reference_and_gradients(name, data):
    row, kw, layer, x = _build(data, name)
    y = np.array(layer(x), copy=True)
    assert y.shape == row.out_shape(kw, x.shape)
    assert y.dtype == np.float64
    if row.ref is not None:
        np.testing.assert_allclose(y, row.ref(layer, x), rtol=1e-10, atol=1e-12)
    if name == "Dropout":
        kept = y != 0
        np.testing.assert_allclose(y[kept], (x / (1 - kw["p"]))[kept], rtol=1e-12)
    if row.gradcheck:
        if name == "MaxPool2d":  # distinct values: no ties for the finite differences
            x = x + np.arange(x.size).reshape(x.shape) * 1e-3
        gradcheck(layer, x.astype(np.float64), max_checks=12, check_input=not row.integer_input,
                  rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name", [n for n in NAMES if LAYERS[n].bad_ctor])
@given(data=st.data())
def test_invalid_constructor_arguments_are_refused(name, data):
    row = LAYERS[name]
    kw = data.draw(row.ctor, label="constructor")
    kw.update(data.draw(st.sampled_from(row.bad_ctor), label="bad"))
    with pytest.raises(REFUSALS + (MemoryError,)):
        row.make(**kw)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_invalid_inputs_are_refused(name, data):
    row, kw, layer, x = _build(data, name)
    options = [] if row.passthrough else ["complex"]
    if row.rank is not None:
        options += ["add axis", "drop axis"]
    if row.feature_axis is not None:
        options.append("feature size")
    if not options:
        return
    how = data.draw(st.sampled_from(options), label="mutation")
    if how == "complex":
        x = x.astype(np.complex128)
    elif how == "add axis":
        x = x[None]
    elif how == "drop axis":
        x = x[0]
    else:
        shape = list(x.shape)
        shape[row.feature_axis] += 1
        x = np.ones(shape, x.dtype)
    with pytest.raises(REFUSALS):
        layer(x)


@pytest.mark.parametrize("name", [n for n in NAMES
                                  if LAYERS[n].gradcheck and not LAYERS[n].passthrough])
@given(data=st.data())
def test_gradients_of_the_wrong_shape_are_refused(name, data):
    row, kw, layer, x = _build(data, name)
    y = layer(x)
    bad = np.ones(y.shape[:-1] + (y.shape[-1] + 1,))
    with pytest.raises(REFUSALS):
        layer.backward(bad)
