"""Fork safety: a child forked after the parent ran kernels on 2 threads never hangs.

libgomp's worker pool does not survive fork(): before neuropil's atfork handler,
the child's first multi-threaded kernel waited forever for the parent's workers.
Now the child runs kernels on 1 thread until it sets a thread count itself;
then its parallel regions run on a helper thread of its own (a fresh pool), so
set_num_threads(2) in a child really gives 2 threads and never hangs. Each test
turns a hang into a failure with a deadline, and compares the child's results
bit for bit with the parent's.
"""
import concurrent.futures
import multiprocessing
import os
import signal
import time

import pytest

import neuropil
from neuropil import _kernels

import _workloads as W

DEADLINE = 60.0  # seconds; the work itself takes well under one
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture
def parent_on_two_threads(threads):
    neuropil.set_num_threads(2)
    if neuropil.get_num_threads() < 2:
        pytest.skip("OpenMP gives this process fewer than 2 threads")
    assert _kernels.parallel_team_size(2) == 2
    return W.run_all()  # starts the parent's OpenMP pool


def _child_checks(expected) -> str:
    """What a forked child verifies; returns '' or what went wrong."""
    problems = []
    if neuropil.get_num_threads() != 1:
        problems.append(f"child starts with {neuropil.get_num_threads()} threads, not 1")
    if not W.same_bits(W.run_all(), expected):
        problems.append("1-thread results in the child differ from the parent's")
    neuropil.set_num_threads(2)
    if neuropil.get_num_threads() != 2:
        problems.append(f"set_num_threads(2) in the child gives {neuropil.get_num_threads()}")
    if _kernels.parallel_team_size(2) != 2:
        problems.append("a parallel region in the child does not get 2 threads")
    if not W.same_bits(W.run_all(), expected):
        problems.append("2-thread results in the child differ from the parent's")
    return "; ".join(problems)


def _wait_or_kill(pid: int) -> int:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child hung (killed after {DEADLINE:.0f} s)")


def test_os_fork_child_runs_kernels_and_can_use_threads_again(parent_on_two_threads):
    expected = parent_on_two_threads
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 3
        try:
            os.close(read_end)
            msg = _child_checks(expected)
            os.write(write_end, msg.encode())
            code = 1 if msg else 0
        finally:
            os._exit(code)
    os.close(write_end)
    code = _wait_or_kill(pid)
    with os.fdopen(read_end, "rb") as f:
        msg = f.read().decode()
    assert code == 0, f"child exited with {code}: {msg}"
    # the parent is unaffected: still 2 threads, same bits
    assert neuropil.get_num_threads() == 2
    assert _kernels.parallel_team_size(2) == 2
    assert W.same_bits(W.run_all(), expected)


def test_grandchild_forked_from_a_threaded_child(parent_on_two_threads):
    expected = parent_on_two_threads
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            neuropil.set_num_threads(2)
            W.run_all()  # the child's helper thread now has a pool; fork again
            inner = os.fork()
            if inner == 0:
                c = 3
                try:
                    c = 1 if _child_checks(expected) else 0
                finally:
                    os._exit(c)
            end = time.monotonic() + DEADLINE
            while True:
                done, status = os.waitpid(inner, os.WNOHANG)
                if done:
                    code = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() > end:
                    os.kill(inner, signal.SIGKILL)
                    code = 4
                    break
                time.sleep(0.02)
        finally:
            os._exit(code)
    assert _wait_or_kill(pid) == 0


_FIRST_TASK = True  # the parent never runs _pool_task: True in each new worker


def _pool_task(seed):
    # runs in a fork-context worker (several tasks per worker)
    global _FIRST_TASK
    out = {"threads": neuropil.get_num_threads() if _FIRST_TASK else None}
    _FIRST_TASK = False
    out["work"] = W.run_all(seed=seed)
    neuropil.set_num_threads(2)
    out["work2"] = W.run_all(seed=seed)
    out["team"] = _kernels.parallel_team_size(2)
    return out


def _check_pool_results(results, parent_results):
    assert any(r["threads"] is not None for r in results)
    for seed, r in enumerate(results):
        assert r["threads"] in (1, None)  # a worker's first task runs on 1 thread
        assert r["team"] == 2
        assert W.same_bits(r["work"], parent_results[seed])
        assert W.same_bits(r["work2"], parent_results[seed])


def test_multiprocessing_fork_pool(parent_on_two_threads):
    parent = [W.run_all(seed=s) for s in range(3)]
    pool = multiprocessing.get_context("fork").Pool(2)
    try:
        results = pool.map_async(_pool_task, range(3)).get(timeout=DEADLINE)
    except multiprocessing.TimeoutError:
        pytest.fail("a fork-context Pool worker hung")
    finally:
        pool.terminate()
        pool.join()
    _check_pool_results(results, parent)


def test_process_pool_executor_fork(parent_on_two_threads):
    parent = [W.run_all(seed=s) for s in range(3)]
    ex = concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
    try:
        futures = [ex.submit(_pool_task, s) for s in range(3)]
        results = [f.result(timeout=DEADLINE) for f in futures]
    except concurrent.futures.TimeoutError:
        for proc in list(getattr(ex, "_processes", {}).values()):
            proc.kill()  # or interpreter exit would wait for the hung workers
        pytest.fail("a fork-context ProcessPoolExecutor worker hung")
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    _check_pool_results(results, parent)


def test_config_reports_the_fork_handler():
    info = neuropil.show_config("dicts")
    assert info["fork_handler"] is True
    assert info["forks_survived"] == 0
