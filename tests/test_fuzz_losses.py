"""Property-based fuzzing of the loss layers (table: _fuzz_loss_rows.py).

Each row draws the loss's constructor arguments (reduction, class weights,
ignore_index) and a (prediction, target) pair of either float dtype, with
(N, C), (N, C, d1, ...) and unbatched (C,) inputs for the class losses. The loss
must give the reference's value, its ``backward()`` the reference's gradient and
``backward(grad_out)`` the gradient of ``sum(grad_out * losses)`` ('none') or of
``grad_out * loss``, never modifying ``grad_out``; float64 losses pass a
central-difference check. Invalid constructor arguments, targets and gradients
raise TypeError or ValueError.
"""
import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402

from neuropil.testing import gradcheck_loss  # noqa: E402

from _fuzz_loss_rows import LOSSES  # noqa: E402

REFUSALS = (TypeError, ValueError)
NAMES = sorted(LOSSES)


def _draw(data, name, dtype=None):
    row = LOSSES[name]
    kw = data.draw(row.ctor, label="constructor")
    dtype = dtype or data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    gen = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    pred, target = row.sample(data.draw, kw, dtype, gen)
    return row, kw, row.make(**kw), pred, target, gen


def _tol(dtype):
    return dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_value_gradient_and_backward_protocol(name, data):
    row, kw, loss, pred, target, gen = _draw(data, name)
    with pytest.raises(RuntimeError, match="before forward"):
        row.make(**kw).backward()
    want, want_grad = row.ref(loss, pred, target)
    value = loss(pred, target)
    tol = _tol(pred.dtype)
    if loss.reduction == "none":
        assert isinstance(value, np.ndarray) and value.shape == np.shape(want)
        assert value.dtype == pred.dtype
    else:
        assert isinstance(value, float)
    np.testing.assert_allclose(value, want, **tol)
    grad = np.array(loss.backward(), copy=True)
    assert grad.shape == pred.shape and grad.dtype == pred.dtype
    scale = max(1.0, float(np.abs(want_grad).max(initial=0)))
    np.testing.assert_allclose(grad, want_grad, rtol=tol["rtol"], atol=tol["atol"] * scale)
    # with an upstream gradient: of sum(grad_out * losses), or grad_out * loss
    up = gen.standard_normal(np.shape(want)).astype(pred.dtype) if loss.reduction == "none" \
        else pred.dtype.type(gen.standard_normal())
    up_before = np.array(up, copy=True)
    got = loss.backward(up)
    np.testing.assert_array_equal(up, up_before)  # grad_out is never modified
    if loss.reduction == "none" and row.class_axis and pred.ndim > 1:
        up_b = np.expand_dims(np.asarray(up, np.float64), 1)
    else:
        up_b = np.asarray(up, np.float64)
    np.testing.assert_allclose(got, want_grad * up_b, rtol=tol["rtol"],
                               atol=tol["atol"] * scale * max(1.0, float(np.abs(up_b).max())))
    if pred.dtype == np.float64 and np.all(np.isfinite(want)):
        gradcheck_loss(row.make(**kw), pred, target, max_checks=12, rtol=1e-4, atol=1e-7)


def _mutated(data, row, loss, pred, target):
    """(pred, target) broken in one way the row's loss must refuse."""
    how = data.draw(st.sampled_from(row.bad_inputs), label="mutation")
    if how == "target shape":
        if target.ndim and data.draw(st.booleans()):
            return pred, np.ascontiguousarray(target[..., :0] if data.draw(st.booleans())
                                              else np.concatenate([target, target], -1))
        return pred, target[None]
    if how == "complex":
        return pred.astype(np.complex128), target
    if how == "integer input":
        return pred.astype(np.int64), target
    if how == "float labels":
        return pred, target.astype(pred.dtype)
    if how == "outside [0, 1]":
        bad = pred.copy()
        bad.reshape(-1)[0] = data.draw(st.sampled_from([1.5, -0.1, np.inf]))
        return bad, target
    # label range: one label beyond the classes (and not the ignore_index)
    classes = pred.shape[0 if pred.ndim == 1 else 1]
    bad = np.array(target, np.int64)
    label = data.draw(st.sampled_from([classes, classes + 7, -1, -2]))
    if label == loss.ignore_index:
        label = -7
    bad.reshape(-1)[0] = label
    if target.dtype.kind == "f":  # probabilities: a label array of the wrong shape then
        bad = np.full(pred.shape, classes, np.int64)
    return pred, bad


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_invalid_predictions_and_targets_are_refused(name, data):
    row, kw, loss, pred, target, _ = _draw(data, name)
    pred, target = _mutated(data, row, loss, pred, target)
    with pytest.raises(REFUSALS):
        loss(pred, target)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_upstream_gradients_of_the_wrong_shape_are_refused(name, data):
    row, kw, loss, pred, target, _ = _draw(data, name)
    value = loss(pred, target)
    if loss.reduction == "none":
        bad = np.ones(np.shape(value) + (2,))
    else:
        bad = np.ones(data.draw(st.sampled_from([(1,), (2,), (1, 1)])))
    with pytest.raises(REFUSALS):
        loss.backward(bad)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_invalid_constructor_arguments_are_refused(name, data):
    row = LOSSES[name]
    kw = data.draw(row.ctor, label="constructor")
    kw.update(data.draw(st.sampled_from(row.bad_ctor), label="bad"))
    with pytest.raises(REFUSALS):
        row.make(**kw)
