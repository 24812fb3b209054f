import os
import subprocess
import sys

import numpy as np
import pytest

import neuropil


def test_version_and_config(capsys):
    assert neuropil.__version__.count(".") >= 2
    info = neuropil.show_config(mode="dicts")
    for key in ("version", "isa", "num_threads", "openmp", "compiler", "build_type"):
        assert key in info
    assert info["isa"] in info["available_isas"]
    neuropil.show_config()
    text = capsys.readouterr().out
    assert f"neuropil {neuropil.__version__}" in text and "threads:" in text and "ISA" in text
    with pytest.raises(ValueError, match="mode must be"):
        neuropil.show_config(mode="yaml")


def test_set_num_threads(threads):
    neuropil.set_num_threads(1)
    assert neuropil.get_num_threads() == 1
    neuropil.set_num_threads(2)
    serial = not neuropil.show_config(mode="dicts")["openmp"]
    assert neuropil.get_num_threads() == (1 if serial else 2)  # a serial build runs on one
    with pytest.raises(ValueError, match="positive integer, got 0"):
        neuropil.set_num_threads(0)
    with pytest.raises(TypeError, match="must be an int"):
        neuropil.set_num_threads(1.5)


def test_set_isa_errors(isa_path):
    with pytest.raises(ValueError, match="unknown ISA 'sse9'"):
        neuropil.set_isa("sse9")
    neuropil.set_isa("generic")
    assert neuropil.get_isa() == "generic"


def _run(code, **env):
    full = dict(os.environ)
    for k in ("NEUROPIL_NUM_THREADS", "OMP_NUM_THREADS", "NEUROPIL_ISA"):
        full.pop(k, None)
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_environment_variables():
    code = "import neuropil; print(neuropil.get_num_threads(), neuropil.get_isa())"
    assert _run(code, OMP_NUM_THREADS="1").split()[0] == "1"
    assert _run(code, NEUROPIL_NUM_THREADS="1").split()[0] == "1"
    assert _run(code, NEUROPIL_ISA="generic").split()[1] == "generic"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "NEUROPIL_ISA": "bogus"})
    assert "NEUROPIL_ISA='bogus' ignored" in out.stderr


def test_threadpoolctl_sees_and_limits_the_pool(threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_info, threadpool_limits

    if not neuropil.show_config(mode="dicts")["openmp"]:
        pytest.skip("serial build")
    apis = {i["user_api"] for i in threadpool_info()}
    assert "openmp" in apis
    neuropil.set_num_threads(2)
    with threadpool_limits(limits=1, user_api="openmp"):
        assert neuropil.get_num_threads() == 1
        a = np.ones((300, 300), np.float32)
        neuropil.functional.gemm(a, a)


def test_manual_seed_reproducible():
    r1 = neuropil.manual_seed(3).standard_normal(4)
    r2 = neuropil.manual_seed(3).standard_normal(4)
    np.testing.assert_array_equal(r1, r2)
    with pytest.raises(TypeError):
        neuropil.manual_seed("3")


def test_isa_requested_by_environment_is_active():
    wanted = os.environ.get("NEUROPIL_ISA")
    if wanted:  # CI's second pass runs the whole suite with NEUROPIL_ISA=generic
        assert neuropil.get_isa() == wanted
    else:
        assert neuropil.get_isa() == neuropil.show_config(mode="dicts")["available_isas"][-1]


def test_module_scratch_reuse_policy():
    from neuropil.nn import Module

    m = Module()
    a = m._scratch("y", (3, 4), np.float32)
    assert m._scratch("y", (3, 4), np.float32) is a  # training: reused
    assert m._scratch("y", (2, 4), np.float32) is not a  # shape change: new
    m.eval()
    e = m._scratch("y", (2, 4), np.float32)
    assert m._scratch("y", (2, 4), np.float32) is not e  # eval: always fresh


def test_openmp_spin_is_bounded_unless_the_user_chose():
    code = ("import os, neuropil; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    run = lambda e: subprocess.run([sys.executable, "-c", code], env=e, capture_output=True,
                                   text=True, check=True).stdout.strip()
    assert run(env) == "None 100000"  # bounded spin, then sleep: shared machines stay fast
    assert run({**env, "OMP_WAIT_POLICY": "active"}) == "active None"  # the user's choice wins
    assert run({**env, "GOMP_SPINCOUNT": "50"}) == "None 50"
