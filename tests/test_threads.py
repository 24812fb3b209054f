"""Thread safety: several Python threads may run kernels at once (the GIL is released).

Each kernel keeps its scratch (packed GEMM panels, im2col columns, RNN buffers) per
calling thread, every caller gets its own OpenMP team, and the thread count and
kernel ISA are atomics read once per call, so work run in 4 threads at once gives
the same bits as the same work run one after the other. Models are not shared
between threads here: a model's layers keep per-call state (README, "Threads").
"""
import threading

import numpy as np
import pytest

import neuropil
from neuropil import functional as F

import _workloads as W

DEADLINE = 120.0
SEEDS = (0, 1, 2, 3)


def _cycling(setter, values, stop):
    """A job that calls setter with values[0], values[1], ... in turn until stop is
    set; returns how many calls it made."""
    def run():
        n = 0
        while not stop.is_set():
            setter(values[n % len(values)])
            n += 1
        return n
    return run


def _run_in_threads(jobs):
    """Run each job (a no-argument callable) in its own thread, all released together.

    Returns their results in order; re-raises the first error; fails on a hang."""
    barrier = threading.Barrier(len(jobs))
    results = [None] * len(jobs)
    errors = []

    def run(i):
        try:
            barrier.wait()
            results[i] = jobs[i]()
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert not any(t.is_alive() for t in threads), "a kernel call hung in a thread"
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("kernel_threads", [1, 2])
@pytest.mark.parametrize("name", sorted(W.WORKLOADS))
def test_four_threads_give_the_serial_bits(name, kernel_threads, threads):
    neuropil.set_num_threads(kernel_threads)
    work = W.WORKLOADS[name]
    serial = [work(s) for s in SEEDS]
    repeats = 3 if name in ("gemm", "conv", "pool", "lstm") else 1

    def job(seed):
        return lambda: [work(seed) for _ in range(repeats)]

    concurrent = _run_in_threads([job(s) for s in SEEDS])
    for s, runs in zip(SEEDS, concurrent):
        for r in runs:
            assert W.same_bits({name: r}, {name: serial[s]}), f"{name}, seed {s}"


def test_set_num_threads_while_other_threads_compute(threads):
    names = ("gemm", "conv", "lstm")
    serial = {s: W.run_all(names, seed=s) for s in SEEDS[:3]}
    stop = threading.Event()

    toggler = _cycling(neuropil.set_num_threads, (1, 2), stop)

    def worker(seed):
        def run():
            try:
                return [W.run_all(names, seed=seed) for _ in range(4)]
            finally:
                if seed == SEEDS[2]:
                    stop.set()
        return run

    results = _run_in_threads([toggler] + [worker(s) for s in SEEDS[:3]])
    assert results[0] > 0
    for s, runs in zip(SEEDS[:3], results[1:]):
        for r in runs:
            assert W.same_bits(r, serial[s])


def test_set_isa_while_other_threads_compute(threads, isa_path):
    """Switching the kernel family mid-run is allowed (a debugging aid): nothing
    crashes and every result is right to rounding (each call uses one family)."""
    isas = neuropil.show_config("dicts")["available_isas"]
    if len(isas) < 2:
        pytest.skip("only one kernel family on this CPU")
    neuropil.set_num_threads(2)
    names = ("gemm", "conv", "lstm")
    serial = {s: W.run_all(names, seed=s) for s in SEEDS[:2]}
    stop = threading.Event()

    toggler = _cycling(neuropil.set_isa, isas, stop)

    def worker(seed):
        def run():
            try:
                return [W.run_all(names, seed=seed) for _ in range(3)]
            finally:
                stop.set()
        return run

    results = _run_in_threads([toggler] + [worker(s) for s in SEEDS[:2]])
    for s, runs in zip(SEEDS[:2], results[1:]):
        for r in runs:
            for name in names:
                for got, want in zip(r[name], serial[s][name]):
                    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


def test_set_isa_races_every_conv_path(threads, isa_path):
    """A conv call picks its path by vector width and then runs that path's
    kernels: a set_isa() from another thread in between once handed the
    AVX-512 plan to the portable kernels (width 0) and ended the process with
    SIGFPE. Each call now pins one kernel family. Many small calls of every
    path (planar, direct, stride-2 phases, im2col, transposed) against a
    thread that toggles the family as fast as it can."""
    isas = neuropil.show_config("dicts")["available_isas"]
    if len(isas) < 2:
        pytest.skip("only one kernel family on this CPU")
    neuropil.set_num_threads(2)
    g = np.random.default_rng(0)
    cases = []
    for c, oc, k, stride in ((1, 4, 3, 1), (8, 16, 3, 1), (8, 16, 3, 2), (4, 8, 1, 1), (3, 5, 5, 1)):
        x = g.standard_normal((2, c, 9, 9), dtype=np.float32)
        w = g.standard_normal((oc, c, k, k), dtype=np.float32)
        y = F.conv2d(x, w, stride=stride, padding=k // 2)
        cases.append((x, w, stride, k // 2, y))
    stop = threading.Event()

    toggler = _cycling(neuropil.set_isa, isas, stop)

    def worker():
        try:
            for _ in range(60):
                for x, w, stride, pad, want in cases:
                    y = F.conv2d(x, w, stride=stride, padding=pad)
                    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
                    dx, dw, _ = F.conv2d_backward(x, w, y, stride=stride, padding=pad)
                    assert dx.shape == x.shape and dw.shape == w.shape
                    t = F.conv_transpose2d(y, w, stride=stride, padding=pad)
                    assert t.shape[1] == x.shape[1]
        finally:
            stop.set()

    n_toggles, *_ = _run_in_threads([toggler, worker, worker])
    assert n_toggles > 10


def test_a_thread_started_later_sees_the_thread_count(threads):
    """set_num_threads is process-wide (not per thread, unlike omp_set_num_threads)."""
    neuropil.set_num_threads(1)
    seen = _run_in_threads([neuropil.get_num_threads])
    assert seen == [1]
    neuropil.set_num_threads(2)
    expected = min(2, neuropil.get_num_threads())
    assert _run_in_threads([neuropil.get_num_threads]) == [expected]


def test_one_model_copied_per_thread_predicts_the_serial_bits(threads):
    """The README's rule for sharing a model: each thread calls its own copy."""
    import copy

    from neuropil import nn

    neuropil.set_num_threads(2)
    g = np.random.default_rng(7)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, rng=g), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 10 * 10, 5, rng=g))
    x = g.standard_normal((64, 1, 12, 12), dtype=np.float32)
    expected = model.predict(x)
    copies = [copy.deepcopy(model) for _ in SEEDS]
    outs = _run_in_threads([lambda m=m: [m.predict(x) for _ in range(3)] for m in copies])
    for runs in outs:
        for out in runs:
            assert out.tobytes() == expected.tobytes()
