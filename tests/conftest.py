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


# Property-based fuzzing (tests/test_fuzz_*.py). The default profile is
# derandomised with a fixed budget, so the suite is fast and every run tries
# the same cases; HYPOTHESIS_PROFILE=long explores much further (for kernel work).
try:
    import os as _os

    from hypothesis import HealthCheck, settings

    _quiet = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    settings.register_profile("ci", max_examples=15, derandomize=True, deadline=None,
                              database=None, suppress_health_check=_quiet, print_blob=True)
    settings.register_profile("long", max_examples=1000, deadline=None,
                              suppress_health_check=_quiet, print_blob=True)
    settings.load_profile(_os.environ.get("HYPOTHESIS_PROFILE", "ci"))
    # Hypothesis now and then draws a literal constant found in the source of the
    # "local" modules imported so far (not site-packages, not tests). Which modules a
    # run imports (one test file or the whole suite, an editable install or a wheel)
    # would then change the derandomised examples: a case failing in full-suite runs
    # only. The derandomised profile keeps that pool empty, so every run tries the
    # same cases whatever it imported (a private hook of Hypothesis 6.1xx: where it is
    # missing, nothing changes).
    if settings.default.derandomize:
        from hypothesis.internal.conjecture import providers as _providers

        if hasattr(_providers, "_get_local_constants") and hasattr(_providers, "_local_constants"):
            _providers._get_local_constants = lambda: _providers._local_constants
except ImportError:  # the fuzz tests skip without hypothesis
    pass
