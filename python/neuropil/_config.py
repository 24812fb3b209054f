"""Threads, kernel ISA and build configuration."""
from __future__ import annotations

import os
import platform
import sys

from .functional._common import _k


def get_num_threads() -> int:
    """Threads neuropil's kernels use (honours OMP_NUM_THREADS, threadpoolctl)."""
    return _k.get_num_threads()


def set_num_threads(n: int) -> None:
    """Use at most ``n`` threads in neuropil's kernels (``n >= 1``)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    _k.set_num_threads(n)


def get_isa() -> str:
    """The kernel family in use: ``'avx512'``, ``'avx2'`` or ``'generic'``."""
    return _k.get_isa()


def set_isa(name: str) -> None:
    """Switch kernel family at run time (``'generic'``, ``'avx2'`` or ``'avx512'``).

    The environment variable ``NEUROPIL_ISA`` does the same at import.
    """
    _k.set_isa(name)


def config() -> dict:
    """Build and run-time configuration as a dict."""
    info = dict(_k.build_info())
    info.update(
        isa=_k.get_isa(),
        available_isas=list(_k.available_isas()),
        num_threads=_k.get_num_threads(),
        openmp_wait=", ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
                              if k in os.environ) or "OpenMP default",
        python=sys.version.split()[0],
        platform=platform.platform(),
        machine=platform.machine(),
    )
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        pass
    return info


def show_config(mode: str = "stdout"):
    """Print what a bug report needs (version, ISA, threads, compiler, build).

    ``mode="dicts"`` returns the information as a dict instead of printing it.
    """
    info = config()
    if mode == "dicts":
        return info
    if mode != "stdout":
        raise ValueError(f"show_config: mode must be 'stdout' or 'dicts', got {mode!r}")
    cache = lambda b: f"{b // 1024} KiB" if b else "unknown"  # noqa: E731
    lines = [
        f"neuropil {info['version']}",
        f"  kernels (ISA):   {info['isa']}  (available: {', '.join(info['available_isas'])})",
        f"  threads:         {info['num_threads']}  (OpenMP: "
        + (f"yes, {info['openmp_version']}, wait {info['openmp_wait']}" if info["openmp"]
           else "no, serial build")
        + ")",
        f"  compiler:        {info['compiler']}  ({info['build_type']} build, "
        f"SIMD kernels compiled: "
        f"{', '.join(k for k in ('avx2', 'avx512') if info[k + '_compiled']) or 'none'})",
        f"  CPU:             {info['cpu_vendor'] or info['machine']}  avx2={info['cpu_avx2']} "
        f"fma={info['cpu_fma']} avx512f={info['cpu_avx512f']}",
        f"  caches:          L1d {cache(info['l1d_bytes'])}, L2 {cache(info['l2_bytes'])}, "
        f"L3 {cache(info['l3_bytes'])}",
        "  GEMM blocking:   " + ", ".join(
            f"{t} mr={b['mr']} nr={b['nr']} mc={b['mc']} kc={b['kc']} nc={b['nc']}"
            for t, b in (("f32", info["gemm_blocking_f32"]), ("f64", info["gemm_blocking_f64"]))),
        f"  python:          {info['python']}  numpy {info.get('numpy', '?')}",
        f"  platform:        {info['platform']}",
    ]
    print("\n".join(lines))
    return None
