"""pytest-benchmark cases: neuropil GEMM vs numpy.matmul (run: pytest bench/ --benchmark-only)."""
import numpy as np
import pytest

from neuropil.functional import gemm

SHAPES = [(128, 512, 784), (128, 10, 512), (1024, 1024, 1024), (64, 128, 3136)]


@pytest.fixture(params=SHAPES, ids=lambda s: "x".join(map(str, s)))
def operands(request):
    m, n, k = request.param
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    return a, b, np.empty((m, n), np.float32)


@pytest.mark.benchmark(group="gemm")
def test_neuropil_gemm(benchmark, operands):
    a, b, out = operands
    benchmark(gemm, a, b, out=out)


@pytest.mark.benchmark(group="gemm")
def test_numpy_matmul(benchmark, operands):
    a, b, out = operands
    benchmark(np.matmul, a, b, out=out)
