import numpy as np
import pytest

import neuropil


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def isa_path(request):
    """Run a test body under a given kernel ISA, restoring the previous one."""
    before = neuropil.get_isa()
    yield
    neuropil.set_isa(before)


@pytest.fixture
def threads():
    """Restore the thread count after a test changes it."""
    before = neuropil.get_num_threads()
    yield
    neuropil.set_num_threads(before)
