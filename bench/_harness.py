"""Shared measurement rules for bench/compare.py (see the project's BENCHMARKS notes).

* Every competitor is timed in the same run, interleaved (A B A B ...), with a
  warm-up, and the median of the repeats is reported; quote the ratios.
* Every table names what ran: neuropil's ISA and threads, NumPy's OpenBLAS
  kernel (threadpoolctl), PyTorch's version, and the FMA-loop peak.
* Thread counts are set for every library at once (``Context.threads_set``).
"""
from __future__ import annotations

import contextlib
import os
import resource
import statistics
import time

import numpy as np

import neuropil
from neuropil import _kernels

try:  # optional
    import threadpoolctl
except ImportError:  # pragma: no cover
    threadpoolctl = None

try:  # optional
    import torch
except ImportError:  # pragma: no cover
    torch = None


def openblas_info() -> str:
    if threadpoolctl is None:
        return "threadpoolctl not installed"
    infos = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    if not infos:
        return "no BLAS found"
    i = infos[0]
    return f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')}"


class Context:
    def __init__(self, threads=(1, 2), repeats=7, quick=False):
        self.threads = list(threads)
        self.repeats = repeats
        self.quick = quick
        self.torch = torch
        self.peak = {}  # threads -> GFLOP/s of the FMA loop, measured at start

    @contextlib.contextmanager
    def threads_set(self, n: int):
        """Set neuropil, OpenBLAS (threadpoolctl) and PyTorch to ``n`` threads."""
        before = neuropil.get_num_threads()
        neuropil.set_num_threads(n)
        torch_before = torch.get_num_threads() if torch is not None else None
        if torch is not None:
            torch.set_num_threads(n)
        limiter = (threadpoolctl.threadpool_limits(limits=n, user_api="blas")
                   if threadpoolctl is not None else contextlib.nullcontext())
        try:
            with limiter:
                yield
        finally:
            neuropil.set_num_threads(before)
            if torch is not None:
                torch.set_num_threads(torch_before)

    def clock(self, threads: int):
        """The clock for a measurement at ``threads`` threads.

        One thread: the calling thread's CPU time (time.thread_time), which
        does not count the minutes-long stretches in which the host takes the
        virtual CPU away; every library runs single-threaded work on the
        calling thread, so this is fair to all. More threads: wall time.
        """
        return time.thread_time if threads == 1 else time.perf_counter

    def time_interleaved(self, fns: dict, repeats: int | None = None, min_time: float = 0.05,
                         warmup: int = 2, threads: int | None = None) -> dict:
        """Median seconds per call of each fn, timed A B A B ... in one run.

        Each sample runs a fn enough times to last ``min_time`` (calibrated on
        the warm-up). Also records minor page faults per call under
        ``self.last_faults``. With ``threads == 1`` thread CPU time is used
        (see ``clock``); the median is taken over the repeats.
        """
        clock = self.clock(threads if threads is not None else neuropil.get_num_threads())
        repeats = repeats or (3 if self.quick else self.repeats)
        inner = {}
        for name, fn in fns.items():
            for _ in range(warmup):
                fn()
            t0 = clock()
            fn()
            dt = max(clock() - t0, 1e-7)
            inner[name] = max(1, int(min_time / dt))
        samples = {name: [] for name in fns}
        faults = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                n = inner[name]
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0 = clock()
                for _ in range(n):
                    fn()
                samples[name].append((clock() - t0) / n)
                faults[name].append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n)
        self.last_faults = {k: statistics.median(v) for k, v in faults.items()}
        return {k: statistics.median(v) for k, v in samples.items()}

    def fma_probe(self, threads: int, seconds: float = 1.0) -> float:
        """FMA-loop GFLOP/s, on the same clock as ``time_interleaved`` uses."""
        with self.threads_set(threads):
            if threads != 1:
                return _kernels.fma_peak_gflops(seconds, threads)
            w0, c0 = time.perf_counter(), time.thread_time()
            g = _kernels.fma_peak_gflops(seconds, 1)
            wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
            return g * wall / max(cpu, 1e-9)

    def header(self) -> str:
        lines = [
            f"neuropil {neuropil.__version__}: ISA={neuropil.get_isa()}, "
            f"max threads={neuropil.get_num_threads()}",
            f"NumPy {np.__version__}: {openblas_info()}",
            "idle-thread waits: " + ", ".join(
                f"{k}={os.environ.get(k, 'unset')}" for k in
                ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")),
            f"PyTorch: {torch.__version__ if torch is not None else 'not installed'}",
        ]
        return "\n".join(lines)


def table(title: str, headers: list, rows: list) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = [f"\n## {title}", "| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in cells[1:]:
        out.append("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |")
    return "\n".join(out)


def _fmt(c) -> str:
    if isinstance(c, float):
        if c >= 100:
            return f"{c:,.0f}"
        return f"{c:.2f}"
    return str(c)
