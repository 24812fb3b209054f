"""A model of data-parallel scaling beyond the machine at hand (docs/scaling.md).

Ring all-reduce of S bytes over p nodes: 2(p-1) messages of S/p bytes each way,

    T(p, S) = k 2 (p-1) alpha  +  2 (p-1)/p * S / beta

alpha: per-message latency, beta: link bandwidth (bytes/s), k: the number of buckets
(each bucket is one all-reduce and pays the latency term). Without overlap the step
time is t_compute + T; efficiency E = t_compute / (t_compute + T). Compute grows with
the per-rank batch b (t_compute = t_fixed + b * t_sample), the all-reduce does not, so

* E = 50% at b_half = (T - t_fixed) / t_sample;
* p ranks beat one rank at all only while p b / (t(b) + T) > b / t(b), i.e. down to
  b_even = (T / (p - 1) - t_fixed) / t_sample.

    python bench/scaling_model.py --step-ms 7.5 --batch 128 --grad-mib 2.04

prints the table for 8, 64 and 256 nodes on 25 and 100 Gb/s links.
"""
from __future__ import annotations

import argparse

# per-message latency of an MPI message between nodes (assumed, typical):
# 25 Gb/s Ethernet with TCP ~ 25 us; 100 Gb/s InfiniBand/RoCE with RDMA ~ 3 us
LINKS = {"25 Gb/s (TCP, 25 us)": (25e9 / 8, 25e-6), "100 Gb/s (RDMA, 3 us)": (100e9 / 8, 3e-6)}
NODES = (8, 64, 256)


def ring_allreduce_s(p: int, nbytes: float, beta: float, alpha: float) -> tuple:
    """(latency term, bandwidth term) in seconds."""
    return 2 * (p - 1) * alpha, 2 * (p - 1) / p * nbytes / beta


def table(name: str, step_s: float, batch: int, grad_bytes: float,
          fixed_s: float = 0.0, buckets: int = 1) -> str:
    t_sample = (step_s - fixed_s) / batch
    lines = [f"{name}: compute {step_s * 1e3:.2f} ms per step of {batch} samples per rank, "
             f"gradients {grad_bytes / 2**20:.2f} MiB in {buckets} bucket(s)",
             f"{'link':>22} {'nodes':>5} {'latency ms':>10} {'bandw. ms':>9} {'eff.':>5} "
             f"{'b at 50%':>8} {'b break-even':>12}"]
    for link, (beta, alpha) in LINKS.items():
        for p in NODES:
            lat, bw = ring_allreduce_s(p, grad_bytes, beta, alpha)
            lat *= buckets
            total = lat + bw
            eff = step_s / (step_s + total)
            b_half = max(0.0, (total - fixed_s) / t_sample)
            b_even = max(0.0, (total / (p - 1) - fixed_s) / t_sample)
            lines.append(f"{link:>22} {p:5d} {lat * 1e3:10.3f} {bw * 1e3:9.3f} {eff:5.0%} "
                         f"{b_half:8.0f} {b_even:12.1f}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step-ms", type=float, required=True,
                    help="measured compute time of one step per rank")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--grad-mib", type=float, required=True)
    ap.add_argument("--buckets", type=int, default=1)
    ap.add_argument("--node-speedup", type=float, default=1.0,
                    help="divide the compute time by this (a many-core node per rank)")
    ap.add_argument("--name", default="model")
    args = ap.parse_args(argv)
    print(table(args.name, args.step_ms / 1e3 / args.node_speedup, args.batch,
                args.grad_mib * 2**20, buckets=args.buckets))


if __name__ == "__main__":
    main()
