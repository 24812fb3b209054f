"""The layer table for tests/test_fuzz_layers.py: one Row per layer (or mode of a layer).

A row draws constructor arguments and a valid input shape and says what the layer
must give: the output shape, a NumPy reference, extra checks of state it updates
(BatchNorm's running statistics), constructor arguments it must refuse. A layer
that lands later is one row here (multi-input layers: MERGES; losses:
_fuzz_loss_rows.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from hypothesis import strategies as st

from neuropil import nn

import _conv_reference as CR
import _fuzz_ops_pointwise as PW
import _fuzz_ops_spatial as SP

small = st.integers(1, 6)


@dataclass
class Row:
    ctor: Callable                      # draw -> kwargs; the layer is make(**kwargs)
    make: Callable                      # kwargs -> Module
    input_shape: Callable               # (draw, kwargs) -> valid input shape
    out_shape: Callable                 # (kwargs, input shape) -> output shape
    ref: Optional[Callable] = None      # (layer, x) -> expected output (NumPy)
    bad_ctor: list = field(default_factory=list)  # kwargs updates refused by the constructor
    bad_call: list = field(default_factory=list)  # refused at the latest by the first forward
    rank: Optional[int] = None          # the input rank, when fixed
    ranks: Optional[tuple] = None       # the ranks the layer may take (others are refused)
    feature_axis: Optional[int] = None  # an input axis whose size is fixed by the layer
    gradcheck: bool = True
    integer_input: bool = False         # indices (Embedding)
    kink: object = False                # True: keep inputs away from 0; or (x, kw) -> x
    passthrough: bool = False           # moves data without arithmetic: any dtype goes
    prepare: Optional[Callable] = None  # (layer, numpy Generator) -> None, before the forward
    check: Optional[Callable] = None    # (layer, x, y, state before the forward) -> None

    def accepted_ranks(self):
        return (self.rank,) if self.rank is not None else self.ranks


def _st(fn):
    return st.composite(fn)()


def _pool_out(kw, shape):
    k, p = kw["kernel_size"], kw.get("padding", 0)
    s = kw["stride"] or k
    cm = kw.get("ceil_mode", False)
    return shape[:2] + tuple(CR.pool_out(v, k, s, p, cm) for v in shape[2:])


def _pool_shape(draw, kw):
    k = kw["kernel_size"]
    return (draw(small), draw(small), draw(st.integers(k, k + 5)), draw(st.integers(k, k + 5)))


@st.composite
def _pool_ctor(draw, avg=False):
    k = draw(st.integers(1, 3))
    kw = dict(kernel_size=k, stride=draw(st.sampled_from([None, 1, 2, 3])),
              padding=draw(st.integers(0, k // 2)), ceil_mode=draw(st.booleans()))
    if avg:
        kw["count_include_pad"] = draw(st.booleans())
    return kw


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


_CTOR_DEFAULTS = {"leaky_relu": dict(negative_slope=0.01), "elu": dict(alpha=1.0),
                  "gelu": dict(approximate="none"), "softplus": dict(beta=1.0, threshold=20.0)}


def _pointwise(cls, name, ctor, bad_ctor):
    """LeakyReLU, ELU, GELU, Softplus: the reference of the functional fuzz table."""
    def ref(layer, x):
        p = {k: getattr(layer, k) for k in ("negative_slope", "alpha", "approximate", "beta",
                                            "threshold") if hasattr(layer, k)}
        return PW._POINTWISE[name][0](x, p)

    def away(x, kw):
        p = dict(_CTOR_DEFAULTS[name], **{k: v for k, v in kw.items() if k != "inplace"})
        return PW._away_from_kinks(name, x, p)

    return Row(ctor=ctor, make=lambda **kw: cls(**kw),
               input_shape=lambda draw, kw: tuple(draw(st.lists(small, min_size=1, max_size=4))),
               out_shape=lambda kw, s: s, ref=ref, kink=away, bad_ctor=bad_ctor)


# -- Conv2d (groups) and ConvTranspose2d --------------------------------------------------

@st.composite
def _conv_ctor(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    return dict(in_channels=groups * draw(st.integers(1, 2)),
                out_channels=groups * draw(st.integers(1, 3)),
                kernel_size=draw(st.integers(1, 3)), stride=draw(st.integers(1, 2)),
                padding=draw(st.integers(0, 1)), dilation=draw(st.integers(1, 2)),
                groups=groups, bias=draw(st.booleans()))


@st.composite
def _transpose_ctor(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    return dict(in_channels=groups * draw(st.integers(1, 2)),
                out_channels=groups * draw(st.integers(1, 2)),
                kernel_size=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), stride=s,
                padding=draw(st.integers(0, 1)), output_padding=draw(st.integers(0, max(s, d) - 1)),
                groups=groups, bias=draw(st.booleans()), dilation=d)


def _transpose_out(kw, shape):
    k, s, p, op, d = (kw["kernel_size"], kw["stride"], kw["padding"], kw["output_padding"],
                      kw["dilation"])
    return (shape[0], kw["out_channels"]) + tuple(
        (shape[2 + i] - 1) * s - 2 * p + d * (k[i] - 1) + op + 1 for i in range(2))


def _transpose_input(draw, kw):
    k, s, p, op, d = (kw["kernel_size"], kw["stride"], kw["padding"], kw["output_padding"],
                      kw["dilation"])
    # the smallest input whose output is not empty: (H - 1)·s − 2p + d·(k − 1) + op + 1 >= 1
    lo = [1 + max(0, -(-(2 * p - d * (k[i] - 1) - op) // s)) for i in range(2)]
    return (draw(st.integers(1, 3)), kw["in_channels"], draw(st.integers(lo[0], lo[0] + 3)),
            draw(st.integers(lo[1], lo[1] + 3)))


def _transpose_check(layer, x, y, before):
    """forward(x, output_size=) picks the output padding that gives that size, between
    the smallest output and it plus stride − 1 (PyTorch's range)."""
    lo = [v - op for v, op in zip(y.shape[2:], layer.output_padding)]
    hi = [lo[i] + layer.stride[i] - 1 for i in range(2)]
    if min(hi) < 1:  # no requestable size is non-empty
        return
    for size in {tuple(max(v, 1) for v in lo), tuple(hi)}:
        z = np.array(layer(x, output_size=size), copy=True)
        op = tuple(size[i] - lo[i] for i in range(2))
        want = SP.conv_transpose2d_ref(x, layer.weight.data,
                                       None if layer.bias is None else layer.bias.data,
                                       layer.stride, layer.padding, op, layer.groups,
                                       layer.dilation)
        np.testing.assert_allclose(z, want, rtol=1e-10, atol=1e-12)
    layer(x)  # back to the layer's own output_padding


# -- BatchNorm -----------------------------------------------------------------------------

def _bn_ctor(train):
    @st.composite
    def ctor(draw):
        return dict(num_features=draw(st.integers(1, 4)),
                    eps=draw(st.sampled_from([1e-5, 1e-3, 0.1])),
                    momentum=draw(st.sampled_from([0.1, 0.5, 1.0, None])),
                    affine=draw(st.booleans()),
                    track_running_stats=draw(st.booleans()) if train else draw(
                        st.sampled_from([True, True, False])),
                    train=train)
    return ctor()


def _bn_input(rank_choices):
    def shape(draw, kw):
        rank = draw(st.sampled_from(rank_choices))
        s = (draw(st.integers(1, 4)), kw["num_features"]) + tuple(
            draw(st.integers(1, 3)) for _ in range(rank - 2))
        if (kw["train"] or not kw["track_running_stats"]) and np.prod(s) // s[1] < 2:
            s = (2,) + s[1:]  # batch statistics need more than one value per channel
        return s
    return shape


def _bn_prepare(layer, gen):
    c = layer.num_features
    if layer.affine:
        layer.weight.data[...] = gen.standard_normal(c)
        layer.bias.data[...] = gen.standard_normal(c)
    if layer.track_running_stats:
        layer.running_mean[...] = gen.standard_normal(c)
        layer.running_var[...] = gen.random(c) + 0.2
        layer.num_batches_tracked[()] = gen.integers(0, 5)
    if not layer._fuzz_train:
        layer.eval()


def _bn_stats(x):
    axes = (0,) + tuple(range(2, x.ndim))
    return x.mean(axis=axes), x.var(axis=axes), x.size // x.shape[1]


def _bn_ref(layer, x):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if layer.training or layer.running_mean is None:
        mean, var, _ = _bn_stats(x)
    else:
        mean, var = layer.running_mean, layer.running_var
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + layer.eps)
    if layer.affine:
        y = y * layer.weight.data.reshape(shape) + layer.bias.data.reshape(shape)
    return y


def _bn_check(layer, x, y, before):
    """Training updates the running statistics with the UNBIASED variance and counts the
    batch; evaluation leaves them alone."""
    if not layer.track_running_stats:
        return
    if not layer.training:
        for k in ("running_mean", "running_var", "num_batches_tracked"):
            np.testing.assert_array_equal(getattr(layer, k), before[k])
        return
    mean, var, m = _bn_stats(x)
    count = int(before["num_batches_tracked"]) + 1
    f = layer.momentum if layer.momentum is not None else 1.0 / count
    assert int(layer.num_batches_tracked) == count
    np.testing.assert_allclose(layer.running_mean, (1 - f) * before["running_mean"] + f * mean,
                               rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(layer.running_var,
                               (1 - f) * before["running_var"] + f * var * m / (m - 1),
                               rtol=1e-12, atol=1e-13)


def _bn_make(cls):
    def make(train, **kw):
        layer = cls(**kw, dtype=np.float64)
        layer._fuzz_train = train  # read by _bn_prepare
        return layer
    return make


def _bn_row(cls, train, rank_choices):
    bad = [dict(num_features=0), dict(num_features=-1), dict(num_features=2.5),
           dict(eps=-1.0), dict(eps=float("nan")), dict(momentum=float("nan")),
           dict(momentum="fast"), dict(affine="yes"), dict(track_running_stats=1)]
    return Row(ctor=_bn_ctor(train), make=_bn_make(cls), input_shape=_bn_input(rank_choices),
               out_shape=lambda kw, s: s, ref=_bn_ref, bad_ctor=bad, ranks=tuple(rank_choices),
               feature_axis=1, prepare=_bn_prepare, check=_bn_check)


# -- Upsample -------------------------------------------------------------------------------

@st.composite
def _upsample_ctor(draw, fixed_mode=None):
    mode = fixed_mode or draw(st.sampled_from(["nearest", "linear", "bilinear"]))
    rank = {"linear": 3, "bilinear": 4}.get(mode) or draw(st.sampled_from([3, 4]))
    kw = dict(rank=rank)
    if fixed_mode is None:
        kw["mode"] = mode
        if mode != "nearest":
            kw["align_corners"] = draw(st.sampled_from([None, True, False]))
    dims = rank - 2
    if draw(st.booleans()):
        sizes = tuple(draw(st.integers(1, 9)) for _ in range(dims))
        kw["size"] = sizes if dims > 1 and draw(st.booleans()) else sizes[0]
    else:
        kw["scale_factor"] = draw(st.sampled_from([2, 2.0, 1.5, 0.5, 3, 1.25, 1 / 3]))
    return kw


def _upsample_args(layer):
    return dict(size=layer.size, scale_factor=layer.scale_factor, mode=layer.mode,
                align_corners=layer.align_corners,
                recompute_scale_factor=layer.recompute_scale_factor)


def _upsample_input(draw, kw):
    sf = kw.get("scale_factor")
    lo = 1 if sf is None or sf >= 1 else int(np.ceil(1 / sf))  # the output must not be empty
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3))) + tuple(
        draw(st.integers(lo, lo + 5)) for _ in range(kw["rank"] - 2))


def _upsample_ref(layer, x):
    _, taps = SP._interp_plan(x.shape, _upsample_args(layer))
    return SP._resample(x, taps)


def _upsample_out(layer_cls):
    def out(kw, shape):
        layer = layer_cls(**{k: v for k, v in kw.items() if k != "rank"})
        oshape, _ = SP._interp_plan(shape, _upsample_args(layer))
        return oshape
    return out


def _upsample_row(cls, fixed_mode=None):
    bad = [dict(size=None, scale_factor=None), dict(size=3, scale_factor=2)]
    if fixed_mode is None:
        bad += [dict(mode="bicubic"), dict(mode="nearest", align_corners=True)]
    return Row(ctor=_upsample_ctor(fixed_mode), make=lambda rank, **kw: cls(**kw),
               input_shape=_upsample_input, out_shape=_upsample_out(cls), ref=_upsample_ref,
               bad_ctor=bad, bad_call=[dict(size=0, scale_factor=None),
                                       dict(size=None, scale_factor=-2.0),
                                       dict(size=None, scale_factor=float("nan")),
                                       dict(size=2**40, scale_factor=None)],
               ranks=(4,) if fixed_mode == "bilinear" else (3, 4))  # nearest: 1-D too, as PyTorch


# -- Dropout2d ------------------------------------------------------------------------------

def _dropout2d_check(layer, x, y, before):
    """Whole (n, c) planes are dropped or kept and scaled; eval mode is the identity."""
    kept = np.abs(y).reshape(y.shape[:2] + (-1,)).max(axis=2) > 0
    scaled = x / (1 - layer.p)
    for n, c in np.ndindex(*y.shape[:2]):
        np.testing.assert_allclose(y[n, c], scaled[n, c] if kept[n, c] else 0.0, rtol=1e-12)
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)
    layer.train()


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
        ctor=_conv_ctor(),
        make=lambda **kw: nn.Conv2d(**kw, rng=0, dtype=np.float64),
        input_shape=lambda draw, kw: (draw(st.integers(1, 3)), kw["in_channels"],
                                      draw(st.integers(5, 8)), draw(st.integers(5, 8))),
        out_shape=lambda kw, s: (s[0], kw["out_channels"]) + tuple(
            CR.out_size(v, kw["kernel_size"], kw["stride"], kw["padding"], kw["dilation"])
            for v in s[2:]),
        ref=lambda m, x: CR.conv2d_grouped_ref(x, m.weight.data,
                                               None if m.bias is None else m.bias.data,
                                               m.stride, m.padding, m.dilation, m.groups),
        bad_ctor=[dict(in_channels=0), dict(out_channels=-2), dict(kernel_size=0),
                  dict(stride=0), dict(padding=-1), dict(dilation=0), dict(kernel_size=2**40),
                  dict(padding="valid!"), dict(in_channels=1.5), dict(groups=0),
                  dict(in_channels=3, out_channels=6, groups=2),
                  dict(in_channels=4, out_channels=3, groups=2)],
        rank=4, feature_axis=1),
    "ConvTranspose2d": Row(
        ctor=_transpose_ctor(),
        make=lambda **kw: nn.ConvTranspose2d(**kw, rng=0, dtype=np.float64),
        input_shape=_transpose_input,
        out_shape=_transpose_out,
        ref=lambda m, x: SP.conv_transpose2d_ref(x, m.weight.data,
                                                 None if m.bias is None else m.bias.data,
                                                 m.stride, m.padding, m.output_padding,
                                                 m.groups, m.dilation),
        bad_ctor=[dict(in_channels=0), dict(out_channels=-1), dict(groups=0),
                  dict(in_channels=3, out_channels=2, groups=2), dict(kernel_size=0),
                  dict(stride=0), dict(padding=-1), dict(dilation=0),
                  dict(stride=2, dilation=1, output_padding=2), dict(output_padding=-1),
                  dict(kernel_size=2**40)],
        rank=4, feature_axis=1, check=_transpose_check),
    "MaxPool2d": Row(
        ctor=_pool_ctor(),
        make=lambda **kw: nn.MaxPool2d(**kw),
        input_shape=_pool_shape,
        out_shape=_pool_out,
        ref=lambda m, x: CR.max_pool_ref(x, m.kernel_size, m.stride, m.padding, m.ceil_mode)[0],
        bad_ctor=[dict(kernel_size=0), dict(kernel_size=-1), dict(stride=0),
                  dict(kernel_size=2, padding=2), dict(kernel_size=2**40)],
        rank=4),
    "AvgPool2d": Row(
        ctor=_pool_ctor(avg=True),
        make=lambda **kw: nn.AvgPool2d(**kw),
        input_shape=_pool_shape,
        out_shape=_pool_out,
        ref=lambda m, x: CR.avg_pool_ref(x, m.kernel_size, m.stride, m.padding,
                                         m.count_include_pad, m.ceil_mode),
        bad_ctor=[dict(kernel_size=0), dict(stride=-1), dict(kernel_size=2, padding=2)],
        rank=4),
    "BatchNorm1d(train)": _bn_row(nn.BatchNorm1d, True, (2, 3)),
    "BatchNorm1d(eval)": _bn_row(nn.BatchNorm1d, False, (2, 3)),
    "BatchNorm2d(train)": _bn_row(nn.BatchNorm2d, True, (4,)),
    "BatchNorm2d(eval)": _bn_row(nn.BatchNorm2d, False, (4,)),
    "Upsample": _upsample_row(nn.Upsample),
    "UpsamplingNearest2d": _upsample_row(nn.UpsamplingNearest2d, "nearest"),
    "UpsamplingBilinear2d": _upsample_row(nn.UpsamplingBilinear2d, "bilinear"),
    "ReLU": _elementwise(nn.ReLU, lambda v: np.maximum(v, 0), kink=True),
    "Sigmoid": _elementwise(nn.Sigmoid, _sigmoid),
    "Tanh": _elementwise(nn.Tanh, np.tanh),
    "Identity": _elementwise(nn.Identity, lambda v: v, passthrough=True),
    "LeakyReLU": _pointwise(
        nn.LeakyReLU, "leaky_relu",
        _st(lambda draw: dict(negative_slope=draw(st.sampled_from([0.01, 0.0, 0.3, 1.5, -0.2])),
                              inplace=draw(st.booleans()))),
        [dict(negative_slope=float("nan")), dict(negative_slope=float("inf")),
         dict(negative_slope="0.1")]),
    "ELU": _pointwise(
        nn.ELU, "elu",
        _st(lambda draw: dict(alpha=draw(st.sampled_from([1.0, 0.5, 2.0, 0.0, -0.5])),
                              inplace=draw(st.booleans()))),
        [dict(alpha=float("nan")), dict(alpha=None)]),
    "GELU": _pointwise(
        nn.GELU, "gelu",
        _st(lambda draw: dict(approximate=draw(st.sampled_from(["none", "tanh"])))),
        [dict(approximate="fast"), dict(approximate=None)]),
    "Softplus": _pointwise(
        nn.Softplus, "softplus",
        _st(lambda draw: dict(beta=draw(st.sampled_from([1.0, 0.5, 3.0, -1.0])),
                              threshold=draw(st.sampled_from([20.0, 1.0, 0.0, -2.0])))),
        [dict(beta=0.0), dict(beta=float("nan")), dict(threshold=float("nan")),
         dict(beta="1")]),
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
    "Dropout2d": Row(
        ctor=_st(lambda draw: dict(p=draw(st.sampled_from([0.0, 0.3, 0.7])))),
        make=lambda **kw: nn.Dropout2d(**kw, rng=0),
        input_shape=lambda draw, kw: (draw(small), draw(small), draw(st.integers(1, 3)),
                                      draw(st.integers(1, 3))),
        out_shape=lambda kw, s: s, check=_dropout2d_check,
        bad_ctor=[dict(p=1.0), dict(p=-0.1), dict(p="half"), dict(p=float("nan"))],
        rank=4, gradcheck=False),  # a new mask every forward
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


# -- multi-input layers: forward(*inputs), backward(grad) -> one gradient per input ---------

@dataclass
class MergeRow:
    make: Callable          # draw -> (layer, dim or None)
    ref: Callable           # (layer, inputs) -> output
    bad_ctor: list = field(default_factory=list)


def _concat_ref(layer, xs):
    return np.concatenate(xs, axis=layer.dim)


MERGES = {
    "Concat": MergeRow(make=lambda draw: nn.Concat(draw(st.integers(-3, 2))), ref=_concat_ref,
                       bad_ctor=[dict(dim=1.5), dict(dim="1"), dict(dim=True)]),
    "Add": MergeRow(make=lambda draw: nn.Add(), ref=lambda layer, xs: np.sum(xs, axis=0)),
}

# classes of nn.__all__ that are Modules but have no row here, and why
NOT_FUZZED = {"Module": "the base class (every row exercises it)",
              "Sequential": "a container: its backward is derived (tests/test_graph.py)",
              "ModuleList": "a container without forward",
              "ModuleDict": "a container without forward"}
