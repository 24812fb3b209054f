"""Speed of neuropil against NumPy (and PyTorch when installed), same run, ratios.

    python bench/compare.py {gemm,mlp,conv,rnn,optim,norm,act,unet,memory,all} [--threads 1,2] [--repeats 7] [--quick]

Each family lives in bench/family_<name>.py and exposes ``run(ctx) -> str``
(the tables it printed). A one-second two-thread FMA probe runs at the start
and the end; two-thread figures taken while it was low are flagged.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import sys

# Interleaved multi-thread timing (A B A B ...) is only fair if no library's
# idle workers keep spinning into the next one's turn. neuropil bounds its
# OpenMP spin (GOMP_SPINCOUNT=100000, which PyTorch's libgomp then shares);
# OpenBLAS spins 2^28 cycles by default, so it gets a comparable bound of 2^22
# cycles (about 1-2 ms). Must be set before NumPy loads; an explicit setting wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "22")

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _harness import Context  # noqa: E402

FAMILIES = ["gemm", "mlp", "conv", "rnn", "optim", "norm", "act", "unet", "memory"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("family", choices=FAMILIES + ["all"])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    ctx = Context(threads=threads, repeats=args.repeats, quick=args.quick)
    print(ctx.header())
    probe_n = max(threads)
    for n in sorted(set([1, probe_n])):
        ctx.peak[n] = ctx.fma_probe(n)
    print(f"FMA-loop peak at start: " +
          ", ".join(f"{n} thread(s) {g:.0f} GFLOP/s" for n, g in sorted(ctx.peak.items())))
    families = FAMILIES if args.family == "all" else [args.family]
    for fam in families:
        try:
            mod = importlib.import_module(f"family_{fam}")
        except ImportError as err:
            print(f"\n## {fam}: not available yet ({err})")
            continue
        mod.run(ctx)
    end = ctx.fma_probe(probe_n)
    start = ctx.peak[probe_n]
    print(f"\nFMA-loop peak at end: {probe_n} thread(s) {end:.0f} GFLOP/s")
    if probe_n > 1 and min(start, end) < 0.8 * max(start, end):
        print(f"WARNING: the {probe_n}-thread FMA probe moved from {start:.0f} to {end:.0f} "
              f"GFLOP/s during the run: the host was time-slicing the CPUs; multi-thread "
              f"figures above are unreliable.")


if __name__ == "__main__":
    main()
