"""pytest-benchmark cases for the MLP training step (run: pytest bench/ --benchmark-only).

Both libraries run on 1 thread (neuropil.set_num_threads, threadpoolctl for
OpenBLAS): the primary figure on these time-sliced machines (see BENCHMARKS.md);
bench/compare.py mlp reports 1 and 2 threads side by side.
"""
import contextlib
import sys
import pathlib

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from family_mlp import (LR, MOMENTUM, SIZES, build_neuropil, check_numpy_reference,  # noqa: E402
                        linears, neuropil_step_fn)
from numpy_mlp import NumpyMLP  # noqa: E402

import neuropil  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    before = neuropil.get_num_threads()
    neuropil.set_num_threads(1)
    try:
        import threadpoolctl
        limiter = threadpoolctl.threadpool_limits(limits=1, user_api="blas")
    except ImportError:  # pragma: no cover
        limiter = contextlib.nullcontext()
    with limiter:
        yield
    neuropil.set_num_threads(before)


def _data(batch):
    rng = np.random.default_rng(batch)
    return rng.standard_normal((batch, SIZES[0])).astype(np.float32), rng.integers(0, 10, batch)


def test_numpy_reference_matches_neuropil():
    check_numpy_reference()


@pytest.mark.parametrize("batch", [32, 128])
def test_mlp_step_neuropil(benchmark, batch):
    x, y = _data(batch)
    benchmark(neuropil_step_fn(*build_neuropil(), x, y))


@pytest.mark.parametrize("batch", [32, 128])
def test_mlp_step_numpy(benchmark, batch):
    x, y = _data(batch)
    model, _, _ = build_neuropil()
    lins = linears(model)
    ref = NumpyMLP([l.weight.data for l in lins], [l.bias.data for l in lins], LR, MOMENTUM)
    benchmark(ref.step, x, y)
