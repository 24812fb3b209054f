"""Property-based fuzzing of every public ``neuropil.functional`` op (tables: _fuzz_ops*.py,
one per family; their shared pieces in _fuzz_base.py).

Valid random calls must match the NumPy references. Invalid ones (wrong dtype,
rank or shape, NaN, non-contiguous or read-only arrays, outputs aliasing inputs,
negative or absurd sizes) must raise TypeError, ValueError or MemoryError, or,
where the contract allows the variant (a strided input copied, an in-place
``out=x``), give the reference's result: never crash, never garbage.

Derandomised with a fixed budget by default (tests/conftest.py);
``HYPOTHESIS_PROFILE=long`` explores much further.
"""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402

from neuropil import functional as F  # noqa: E402

# each table module registers its rows in ALL_OPS when imported
import _fuzz_ops  # noqa: E402,F401
import _fuzz_ops_losses  # noqa: E402,F401
import _fuzz_ops_pointwise  # noqa: E402,F401
import _fuzz_ops_spatial  # noqa: E402,F401
from _fuzz_base import ALL_OPS, HUGE  # noqa: E402

REFUSALS = (TypeError, ValueError, MemoryError)
OPS = sorted(ALL_OPS)

# public names checked through another entry of the table
COVERED_BY = {"rnn_forward": "rnn", "rnn_backward": "rnn", "rnn_cache": "rnn",
              "as_lengths": "rnn", "conv2d_output_shape": "conv2d",
              "pool2d_output_shape": "avg_pool2d_backward",
              "conv_transpose2d_output_shape": "conv_transpose2d",
              "interpolate_output_shape": "interpolate"}


def test_every_public_functional_op_is_fuzzed():
    missing = [n for n in F.__all__ if n not in ALL_OPS and n not in COVERED_BY]
    assert not missing, f"add rows for these to a tests/_fuzz_ops*.py table: {missing}"
    stale = [n for n in list(ALL_OPS) + list(COVERED_BY)
             if n not in F.__all__ and n not in COVERED_BY.values()]
    assert not stale, f"rows for names functional no longer exports: {stale}"


def _copy(args):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in args.items()}


def _flatten(result):
    if isinstance(result, tuple):
        out = []
        for r in result:
            out.extend(_flatten(r))
        return out
    return [result]


def _tol(dtype):
    return (2e-4, 2e-4) if np.dtype(dtype) == np.float32 else (1e-9, 1e-9)


def _assert_close(got, want, dtype, finite_only=False):
    got, want = _flatten(got), _flatten(want)
    assert len(got) == len(want)
    rtol, atol = _tol(dtype)
    if finite_only:
        # a NaN/inf input must not vanish: some result is non-finite if the reference's is
        def finite(vals):
            return all(np.isfinite(np.asarray(v, dtype=np.float64)).all()
                       for v in vals if v is not None and np.asarray(v).dtype.kind in "fc")
        assert finite(want) or not finite(got), "a NaN/inf input vanished from the results"
    for g, w in zip(got, want):
        if w is None:
            assert g is None
            continue
        g_arr, w_arr = np.asarray(g), np.asarray(w)
        assert g_arr.shape == w_arr.shape, f"shape {g_arr.shape}, expected {w_arr.shape}"
        if g_arr.dtype.kind in "iub":
            np.testing.assert_array_equal(g_arr, w_arr)
            continue
        g64, w64 = g_arr.astype(np.float64), w_arr.astype(np.float64)
        scale = max(1.0, float(np.max(np.abs(w64[np.isfinite(w64)]), initial=0.0)))
        if finite_only:
            # values both give finite must agree; where IEEE arithmetic spreads NaN
            # through a zero (0 * NaN in a GEMM) they may differ in which are finite
            keep = np.isfinite(w64) & np.isfinite(g64)
            g64, w64 = g64[keep], w64[keep]
        np.testing.assert_allclose(g64, w64, rtol=rtol, atol=atol * scale)


def _expect(case, args):
    """The reference's verdict on ``args``: its result, or Refused."""
    try:
        return case.ref(_copy(args)), None
    except Exception as err:  # noqa: BLE001 - the reference cannot take it: refuse it
        return None, err


def _call_or_refusal(case, args, finite_only=False):
    """Run the op on a variant: it must refuse it, or give the reference's result."""
    want, refused = _expect(case, args)
    try:
        got = case.call(args)
    except REFUSALS:
        return
    assert refused is None, f"accepted an argument the contract refuses ({refused})"
    _assert_close(got, want, case.dtype, finite_only)


def _case(data, name):
    return data.draw(ALL_OPS[name](), label=name)


@pytest.mark.parametrize("name", OPS)
@given(data=st.data())
def test_valid_calls_match_numpy(name, data):
    case = _case(data, name)
    want, refused = _expect(case, case.args)
    assert refused is None, f"the table drew an invalid case: {refused}"
    args = _copy(case.args)
    _assert_close(case.call(args), want, case.dtype)
    for k in case.floats:  # inputs are never written
        if k not in case.outs:
            np.testing.assert_array_equal(args[k], case.args[k], err_msg=f"{name} changed {k}")


BAD_DTYPES = [np.int32, np.int64, np.float16, np.complex64, np.bool_, object]


@pytest.mark.parametrize("name", OPS)
@given(data=st.data())
def test_wrong_dtypes_are_refused_or_converted_exactly(name, data):
    """Complex arrays are refused (no silent loss of the imaginary part); other dtypes
    are refused, or converted as documented (a loss's float16 target) and right."""
    case = _case(data, name)
    if not case.floats:
        return
    key = data.draw(st.sampled_from(case.floats), label="argument")
    bad = data.draw(st.sampled_from(BAD_DTYPES), label="dtype")
    args = _copy(case.args)
    args[key] = args[key].astype(bad)
    if bad is np.complex64:
        with pytest.raises(REFUSALS):
            case.call(args)
    else:
        _call_or_refusal(case, args)


@pytest.mark.parametrize("name", OPS)
@given(data=st.data())
def test_the_other_float_dtype_is_refused_or_right(name, data):
    case = _case(data, name)
    if not case.floats:
        return
    key = data.draw(st.sampled_from(case.floats), label="argument")
    args = _copy(case.args)
    other = np.float64 if args[key].dtype == np.float32 else np.float32
    args[key] = args[key].astype(other)
    want, _ = _expect(case, args)
    try:
        got = case.call(args)
    except REFUSALS:
        return
    if want is not None:
        _assert_close(got, want, np.float32)


@pytest.mark.parametrize("name", OPS)
@given(data=st.data())
def test_wrong_rank_or_shape_is_refused_or_right(name, data):
    case = _case(data, name)
    arrays = case.floats + case.outs
    if not arrays:
        return
    key = data.draw(st.sampled_from(sorted(set(arrays))), label="argument")
    args = _copy(case.args)
    a = args[key]
    how = data.draw(st.sampled_from(["add axis", "drop axis", "grow", "empty", "scalar"]))
    if how == "add axis":
        a = a[None]
    elif how == "drop axis" and a.ndim and a.shape[0]:
        a = a[0]
    elif how == "grow" and a.ndim:
        axis = data.draw(st.integers(0, a.ndim - 1))
        grown = list(a.shape)
        grown[axis] += 1
        a = np.resize(a, grown) if a.size else np.ones(grown, a.dtype)
    elif how == "empty" and a.ndim:
        axis = data.draw(st.integers(0, a.ndim - 1))
        a = np.take(a, [], axis=axis)
    elif how == "scalar":
        a = np.asarray(a.reshape(-1)[0] if a.size else 0, a.dtype)
    args[key] = np.ascontiguousarray(a)
    _call_or_refusal(case, args)


@pytest.mark.parametrize("name", OPS)
@given(data=st.data())
def test_non_contiguous_and_read_only_inputs(name, data):
    case = _case(data, name)
    inputs = [k for k in case.floats if k not in case.outs]
    if not inputs:
        return
    args = _copy(case.args)
    key = data.draw(st.sampled_from(inputs), label="argument")
    a = args[key]
    if a.ndim and data.draw(st.booleans(), label="strided"):
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        args[key] = wide[..., ::2]  # same values, every other element
    elif a.ndim >= 2:
        args[key] = np.asfortranarray(a)
    for k in inputs:
        args[k].flags.writeable = False
    _call_or_refusal(case, args)


@pytest.mark.parametrize("name", OPS)
@given(data=st.data())
def test_read_only_outputs_are_refused(name, data):
    case = _case(data, name)
    if not case.outs:
        return
    key = data.draw(st.sampled_from(case.outs), label="output")
    args = _copy(case.args)
    args[key].flags.writeable = False
    before = args[key].copy()
    with pytest.raises(REFUSALS):
        case.call(args)
    np.testing.assert_array_equal(args[key], before)


@pytest.mark.parametrize("name", OPS)
@given(data=st.data())
def test_outputs_aliasing_inputs_are_refused_or_right(name, data):
    case = _case(data, name)
    pairs = [(o, i) for o in case.outs for i in case.floats if i != o and i not in case.outs
             and case.args[i].shape == case.args[o].shape
             and case.args[i].dtype == case.args[o].dtype]
    if not pairs:
        return
    out, inp = data.draw(st.sampled_from(pairs), label="alias")
    args = _copy(case.args)
    want, _ = _expect(case, args)  # the result the op must give if it accepts
    args[out] = args[inp]          # the output is the input array itself
    try:
        got = case.call(args)
    except REFUSALS:
        return
    _assert_close(got, want, case.dtype)


@pytest.mark.parametrize("name", OPS)
@given(data=st.data())
def test_nan_and_inf_inputs_never_corrupt_the_finite_results(name, data):
    case = _case(data, name)
    inputs = [k for k in case.floats if case.args[k].size]
    if not inputs:
        return
    args = _copy(case.args)
    key = data.draw(st.sampled_from(inputs), label="argument")
    flat = args[key].reshape(-1)
    flat[data.draw(st.integers(0, flat.size - 1))] = data.draw(
        st.sampled_from([np.nan, np.inf, -np.inf]))
    with np.errstate(all="ignore"):
        _call_or_refusal(case, args, finite_only=True)


@pytest.mark.parametrize("name", sorted(n for n in OPS if ALL_OPS[n]))
@given(data=st.data())
def test_absurd_sizes_are_refused(name, data):
    case = _case(data, name)
    if not case.absurd:
        return
    key = data.draw(st.sampled_from(sorted(case.absurd)), label="argument")
    args = _copy(case.args)
    args[key] = data.draw(st.sampled_from(case.absurd[key]), label="value")
    with pytest.raises(REFUSALS):
        case.call(args)


@pytest.mark.parametrize("value", [-1, 0, HUGE])
def test_absurd_gemm_and_linear_shapes_from_lists(value):
    with pytest.raises(REFUSALS):
        F.gemm(np.ones((2, 3), np.float32), np.ones((value if value > 0 else 2, 3), np.float32))
    with pytest.raises(REFUSALS):
        F.one_hot([0], value)
