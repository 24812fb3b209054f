"""Quick start: what neuropil runs on, and one GEMM checked against NumPy.

    python examples/quickstart.py [--smoke]
"""
import argparse
import time

import numpy as np

import neuropil
from neuropil.functional import gemm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (used by the tests)")
    args = parser.parse_args(argv)
    neuropil.show_config()
    n = 128 if args.smoke else 1024
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    gemm(a, b, out=c)  # warm-up: packing buffers are allocated once, then reused
    reps = 3 if args.smoke else 20
    t0 = time.perf_counter()
    for _ in range(reps):
        gemm(a, b, out=c)
    t = (time.perf_counter() - t0) / reps
    err = float(np.max(np.abs(c - a @ b)))
    print(f"\nSGEMM {n}x{n}x{n}: {2 * n**3 / t / 1e9:.1f} GFLOP/s on "
          f"{neuropil.get_num_threads()} thread(s), max |neuropil - numpy| = {err:.2e}")
    return err


if __name__ == "__main__":
    main()
