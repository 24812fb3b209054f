"""neuropil: fast, clear neural-network training on CPUs.

C++17 kernels (OpenMP, AVX2/FMA chosen at run time) under a PyTorch-shaped
Python API. See ``neuropil.functional`` for NumPy-in/NumPy-out ops.
"""
from __future__ import annotations

import os as _os
import warnings as _warnings

# Idle OpenMP workers must sleep, not spin. On virtual machines a spinning
# vCPU trips the hypervisor's pause-loop exit and is descheduled, and on shared
# machines it steals the CPU from the thread that has work: on a 2-vCPU VM a
# 1024^2 SGEMM on 2 threads ran at 34 GFLOP/s with libgomp's default spin,
# 76 with a 1000-iteration spin and 143 with passive waiting (1 thread: 77).
# Set before the extension loads libgomp; a user's OMP_WAIT_POLICY or
# GOMP_SPINCOUNT wins. (This is process-wide: other libgomp users that load
# later, PyTorch's copy among them, wait passively too.)
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from . import functional
from . import nn
from . import image
from . import optim
from . import io
from . import datasets
from . import callbacks
from . import training
from .io import save, load
from ._random import manual_seed
from ._config import get_num_threads, set_num_threads, show_config, get_isa, set_isa

__version__ = functional._k.__version__

__all__ = [
    "functional",
    "nn",
    "image",
    "optim",
    "io",
    "datasets",
    "callbacks",
    "training",
    "save",
    "load",
    "manual_seed",
    "get_num_threads",
    "set_num_threads",
    "show_config",
    "get_isa",
    "set_isa",
    "__version__",
]


def _apply_environment() -> None:
    threads = _os.environ.get("NEUROPIL_NUM_THREADS")
    if threads:
        try:
            set_num_threads(int(threads))
        except ValueError:
            _warnings.warn(
                f"NEUROPIL_NUM_THREADS={threads!r} is not a positive integer; ignored",
                RuntimeWarning,
                stacklevel=3,
            )
    isa = _os.environ.get("NEUROPIL_ISA")
    if isa:
        try:
            set_isa(isa.strip().lower())
        except ValueError as err:
            _warnings.warn(f"NEUROPIL_ISA={isa!r} ignored: {err}", RuntimeWarning, stacklevel=3)


_apply_environment()
