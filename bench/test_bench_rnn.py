"""pytest-benchmark cases: one recurrent training step, neuropil vs the NumPy BPTT step
(run: pytest bench/ --benchmark-only)."""
import numpy as np
import pytest

from family_rnn import CELLS, I, K, N, T, LR, neuropil_model, neuropil_step_fn, numpy_params
from numpy_rnn import NumpyRecurrentClassifier


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((N, T, I)).astype(np.float32),
            rng.integers(0, K, N).astype(np.int64))


@pytest.mark.parametrize("label,mode,cls", CELLS, ids=[c[0] for c in CELLS])
@pytest.mark.benchmark(group="rnn")
def test_neuropil_step(benchmark, batch, label, mode, cls):
    model, _ = neuropil_model(cls)
    benchmark(neuropil_step_fn(model, *batch))


@pytest.mark.parametrize("label,mode,cls", CELLS, ids=[c[0] for c in CELLS])
@pytest.mark.benchmark(group="rnn")
def test_numpy_step(benchmark, batch, label, mode, cls):
    model, _ = neuropil_model(cls)
    ref = NumpyRecurrentClassifier(mode, numpy_params(model), LR)
    benchmark(ref.step, *batch)
