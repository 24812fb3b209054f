"""neuropil: fast, clear neural-network training on CPUs.

C++17 kernels (OpenMP, AVX2/FMA chosen at run time) under a PyTorch-shaped
Python API. See ``neuropil.functional`` for NumPy-in/NumPy-out ops.
"""
from __future__ import annotations

import os as _os
import warnings as _warnings

# Idle OpenMP workers spin for a bounded while, then sleep. Spinning keeps
# back-to-back kernels cheap (one wake per GEMM call); sleeping stops idle
# workers from stealing the CPU on shared or virtual machines, where an endless
# spin trips the hypervisor's pause-loop exits. Measured on a 2-vCPU VM, 2
# threads, GFLOP/s for SGEMM 128^2 / 128x512x784 / 1024^2: passive 55 / 83 /
# 139, GOMP_SPINCOUNT=100000 98 / 96 / 145, libgomp's default spin 100 / 96 /
# 148; with another process hogging a CPU, the digits demo trained in 0.3 s
# passive, 0.4 s at 100000 and 0.7 s with the default spin.
# Set before the extension loads libgomp; a user's OMP_WAIT_POLICY or
# GOMP_SPINCOUNT wins. (This is process-wide: other libgomp users that load
# later, PyTorch's copy among them, see it too.)
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "100000"

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
