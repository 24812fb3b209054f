"""Property-based fuzzing of every layer: constructor, forward and backward
(table: _fuzz_layer_rows.py; losses: test_fuzz_losses.py).

Each row draws valid constructor arguments and a valid input shape; the layer
(float64) must give the documented output shape, match its NumPy reference
where the row has one, update its state as documented (BatchNorm's running
statistics) and pass a float64 central-difference gradient check of the input
and every parameter. Invalid constructor arguments, inputs of the wrong rank,
feature size or dtype, and gradients of the wrong shape must raise TypeError or
ValueError. Multi-input layers (Concat, Add) have their own properties below.
"""
import inspect

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402

from neuropil import nn  # noqa: E402
from neuropil.testing import gradcheck  # noqa: E402

from _fuzz_layer_rows import LAYERS, MERGES, NOT_FUZZED  # noqa: E402
from _fuzz_loss_rows import LOSSES  # noqa: E402

REFUSALS = (TypeError, ValueError)
NAMES = sorted(LAYERS)


def test_every_layer_has_a_row():
    """Every Module class nn exports has a row (a layer, a merge or a loss) or a reason."""
    covered = {n.split("(")[0] for n in LAYERS} | set(MERGES) | set(LOSSES) | set(NOT_FUZZED)
    modules = [n for n in nn.__all__ if inspect.isclass(getattr(nn, n))
               and issubclass(getattr(nn, n), nn.Module)]
    missing = [n for n in modules if n not in covered]
    assert not missing, f"add rows for these to tests/_fuzz_layer_rows.py: {missing}"
    stale = sorted(covered - set(modules))
    assert not stale, f"rows for names nn no longer exports: {stale}"


def _ctor_kwargs(data, row):
    return data.draw(row.ctor, label="constructor")


def _build(data, name):
    row = LAYERS[name]
    kw = _ctor_kwargs(data, row)
    layer = row.make(**kw)
    shape = row.input_shape(data.draw, kw)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    g = np.random.default_rng(seed)
    if row.prepare is not None:
        row.prepare(layer, g)
    if row.integer_input:
        x = g.integers(0, kw["num_embeddings"], shape).astype(np.int64)
    else:
        x = g.standard_normal(shape)
        if callable(row.kink):
            x = row.kink(x, kw)
        elif row.kink:
            x = np.where(np.abs(x) < 1e-2, 0.5, x)
    return row, kw, layer, x


def _state(layer):
    return {k: np.array(v, copy=True) for k, v in layer.state_dict().items()}


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_forward_shape_reference_and_gradients(name, data):
    row, kw, layer, x = _build(data, name)
    before = _state(layer)
    y = np.array(layer(x), copy=True)
    assert y.shape == row.out_shape(kw, x.shape)
    assert y.dtype == np.float64
    if row.ref is not None:
        np.testing.assert_allclose(y, row.ref(layer, x), rtol=1e-10, atol=1e-12)
    if row.check is not None:
        row.check(layer, x, y, before)
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
    kw = _ctor_kwargs(data, row)
    kw.update(data.draw(st.sampled_from(row.bad_ctor), label="bad"))
    with pytest.raises(REFUSALS + (MemoryError,)):
        row.make(**kw)


@pytest.mark.parametrize("name", [n for n in NAMES if LAYERS[n].bad_call])
@given(data=st.data())
def test_arguments_checked_at_the_first_call_are_refused(name, data):
    """Arguments PyTorch also takes at construction and refuses at the first forward."""
    row = LAYERS[name]
    kw = _ctor_kwargs(data, row)
    shape = row.input_shape(data.draw, kw)
    kw.update(data.draw(st.sampled_from(row.bad_call), label="bad"))
    with pytest.raises(REFUSALS + (MemoryError,)):
        row.make(**kw)(np.ones(shape))


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_invalid_inputs_are_refused(name, data):
    row, kw, layer, x = _build(data, name)
    options = [] if row.passthrough else ["complex"]
    ranks = row.accepted_ranks()
    if ranks is not None:
        options += [how for how, r in (("add axis", x.ndim + 1), ("drop axis", x.ndim - 1))
                    if r not in ranks]
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


# -- multi-input layers ---------------------------------------------------------------------

def _merge_inputs(data, name, layer, dtype=np.float64):
    k = data.draw(st.integers(1, 3), label="inputs")
    dim = getattr(layer, "dim", 0)
    rank = data.draw(st.integers(max(1, dim + 1, -dim), 4), label="rank")
    shape = [data.draw(st.integers(1, 4)) for _ in range(rank)]
    g = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    xs = []
    for _ in range(k):
        s = list(shape)
        if name == "Concat":
            s[dim] = data.draw(st.integers(1, 3))
        xs.append(g.standard_normal(s).astype(dtype))
    return xs, g


@pytest.mark.parametrize("name", sorted(MERGES))
@given(data=st.data())
def test_merge_layers_match_numpy_and_route_gradients(name, data):
    row = MERGES[name]
    layer = row.make(data.draw)
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    xs, g = _merge_inputs(data, name, layer, dtype)
    y = np.array(layer(*xs), copy=True)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, row.ref(layer, xs))
    dy = g.standard_normal(y.shape).astype(dtype)
    dy_before = dy.copy()
    grads = layer.backward(dy)
    np.testing.assert_array_equal(dy, dy_before)  # grad_out is never modified
    assert isinstance(grads, tuple) and len(grads) == len(xs)
    # the adjoint of the forward: <dy, layer(xs)> is linear in each input
    for i, (x, gx) in enumerate(zip(xs, grads)):
        assert gx.shape == x.shape and gx.dtype == dtype
        basis = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            basis[idx] = 1
            others = [basis if j == i else np.zeros_like(xj) for j, xj in enumerate(xs)]
            assert gx[idx] == np.sum(dy * row.ref(layer, others))
            basis[idx] = 0


@pytest.mark.parametrize("name", sorted(MERGES))
@given(data=st.data())
def test_merge_layers_refuse_mismatched_inputs(name, data):
    row = MERGES[name]
    layer = row.make(data.draw)
    xs, _ = _merge_inputs(data, name, layer)
    options = ["complex", "mixed dtypes", "rank", "no inputs", "grad shape"]
    if name == "Add" or xs[0].ndim > 1:
        options.append("shape")
    how = data.draw(st.sampled_from(options), label="mutation")
    i = data.draw(st.integers(0, len(xs) - 1), label="which")
    if how == "grad shape":
        y = layer(*xs)
        with pytest.raises(REFUSALS):
            layer.backward(np.ones(y.shape[:-1] + (y.shape[-1] + 1,)))
        return
    if how == "no inputs":
        xs = []
    elif how == "complex":
        xs[i] = xs[i].astype(np.complex128)
    elif how == "mixed dtypes":
        xs[i] = xs[i].astype(np.float32)
        if len(xs) == 1:
            xs.append(xs[0].astype(np.float64))
    elif how == "rank":
        xs[i] = xs[i][None]
        if len(xs) == 1:
            xs.append(xs[0][0])
    else:  # a dimension that must agree differs
        dim = getattr(layer, "dim", None)
        axes = [a for a in range(xs[i].ndim) if dim is None or a != dim % xs[i].ndim]
        a = data.draw(st.sampled_from(axes), label="axis")
        s = list(xs[i].shape)
        s[a] += 1
        xs[i] = np.ones(s)
        if len(xs) == 1:
            xs.append(np.ones(tuple(v - (j == a) for j, v in enumerate(s))))
    with pytest.raises(REFUSALS):
        layer(*xs)


@pytest.mark.parametrize("name", [n for n in sorted(MERGES) if MERGES[n].bad_ctor])
@given(data=st.data())
def test_merge_layers_refuse_bad_constructor_arguments(name, data):
    bad = data.draw(st.sampled_from(MERGES[name].bad_ctor))
    with pytest.raises(REFUSALS):
        getattr(nn, name)(**bad)
