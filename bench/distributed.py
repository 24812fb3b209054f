"""Data-parallel training speed: R ranks x T threads under mpiexec against one process.

    python bench/distributed.py [--models mlp,cnn] [--rounds 3] [--steps 60]

Configurations on the same cores (default, for a 2-core machine): 1 rank x 1 thread,
2 ranks x 1 thread, 1 rank x 2 threads, and 2 ranks x 1 thread with the all-reduce
overlapped with the backward pass (NEUROPIL_ALLREDUCE_OVERLAP=1). Each is one
``mpiexec`` launch running ``fit`` on synthetic data (batch per rank: MLP
784-512-256-10 128, LeNet-like CNN 64); the launches are interleaved round by round
and the medians reported, with:

* samples/s over all ranks and the speed-up against 1 rank x 1 thread
  (efficiency = speed-up / ranks);
* the all-reduce time per step: without overlap, the whole all-reduce (after the
  backward pass); with overlap, the part the backward pass did not hide;
* the gradient size, which (with the step time) feeds the scaling model in
  docs/scaling.md.

Wall-clock (two processes); medians of the steps after a warm-up epoch. The
machine is shared: quote the ratios, never the absolute times.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
BATCH = {"mlp": 128, "cnn": 64}


# -- the worker: runs under mpiexec ---------------------------------------------------

def build(kind):
    import neuropil
    from neuropil import nn
    neuropil.manual_seed(0)
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                              nn.Linear(256, 10))
        shape = (784,)
    else:
        model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(),
                              nn.Linear(128, 10))
        shape = (1, 28, 28)
    return model, shape


def worker(kind, steps):
    import numpy as np

    import neuropil
    from neuropil import callbacks, nn, optim
    from neuropil import distributed as dist
    dist.init()
    world, rank = dist.world_size(), dist.rank()
    model, shape = build(kind)
    b = BATCH[kind]
    n = world * b * steps
    x = np.random.default_rng(1).standard_normal((n,) + shape).astype(np.float32)
    y = np.random.default_rng(2).integers(0, 10, n)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    class Clock(callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps, self.reduce, self.cpu = [], [], []

        def on_batch_begin(self, batch, logs=None):
            self.t0, self.c0 = time.perf_counter(), time.thread_time()

        def on_batch_end(self, batch, logs=None):
            self.steps.append(time.perf_counter() - self.t0)
            self.cpu.append(time.thread_time() - self.c0)
            r = dist._reducers.get(self.model)
            self.reduce.append(r.wait_seconds if r is not None else 0.0)

    clock = Clock()
    fit = dict(loss=nn.CrossEntropyLoss(), optimizer=opt, batch_size=b, verbose=0,
               metrics=(), shuffle=False)
    model.fit(x[:world * b * 5], y[:world * b * 5], **fit)  # warm-up: buffers, caches
    model.fit(x, y, callbacks=[clock], **fit)
    grad_bytes = sum(p.data.nbytes for p in model.parameters())
    reducer = dist._reducers.get(model)
    out = {"step": statistics.median(clock.steps), "reduce": statistics.median(clock.reduce),
           "cpu_step": statistics.median(clock.cpu),
           "cpu_share": statistics.median(c / s for c, s in zip(clock.cpu, clock.steps)),
           "world": world, "threads": neuropil.get_num_threads(), "batch": b,
           "grad_bytes": grad_bytes,
           "buckets": reducer.num_buckets if reducer is not None else 0}
    gathered = dist.allgather_object(out)
    if rank == 0:
        # a step ends when the slowest rank ends it: take the slowest rank's median
        slow = max(gathered, key=lambda o: o["step"])
        slow["isa"] = neuropil.get_isa()
        print("RESULT " + json.dumps(slow), flush=True)


# -- the driver ------------------------------------------------------------------------

def launch(kind, ranks, threads, overlap, steps):
    env = dict(os.environ, NEUROPIL_NUM_THREADS=str(threads),
               NEUROPIL_ALLREDUCE_OVERLAP="1" if overlap else "0")
    mpiexec = pathlib.Path(sys.executable).parent / "mpiexec"
    cmd = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(ranks),
           sys.executable, str(pathlib.Path(__file__).resolve()), "--worker", kind,
           "--steps", str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")


def main(argv=None):
    sys.path.insert(0, str(HERE))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--configs", default="1x1,2x1,1x2,2x1o",
                    help="RxT: R ranks x T threads; suffix o: overlapped all-reduce")
    ap.add_argument("--worker", metavar="MODEL", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.steps)
    import neuropil
    from neuropil import _kernels
    configs = []
    for c in args.configs.split(","):
        r, t = c.rstrip("o").split("x")
        configs.append((c, int(r), int(t), c.endswith("o")))
    probe = _kernels.fma_peak_gflops(0.5, 2)
    print(f"neuropil {neuropil.__version__}, ISA {neuropil.get_isa()}, "
          f"{len(os.sched_getaffinity(0))} cores; 2-thread FMA probe {probe:.0f} GFLOP/s")
    for kind in args.models.split(","):
        results = {c[0]: [] for c in configs}
        for _ in range(args.rounds):  # interleaved: A B C D A B C D ...
            for name, r, t, o in configs:
                results[name].append(launch(kind, r, t, o, args.steps))
        base = statistics.median(x["step"] for x in results[configs[0][0]])
        base_rate = configs[0][1] * BATCH[kind] / base
        cbase = statistics.median(x["cpu_step"] for x in results[configs[0][0]])
        cbase_rate = configs[0][1] * BATCH[kind] / cbase
        first = results[configs[0][0]][0]
        print(f"\n{kind}: batch {BATCH[kind]} per rank, gradients "
              f"{first['grad_bytes'] / 2**20:.2f} MiB, medians of {args.rounds} launches x "
              f"{args.steps} steps")
        print("wall clock | on the calling thread's CPU clock (time the host took the CPU "
              "away not counted; MPI's busy waiting is)")
        print(f"{'config':>10} {'step ms':>8} {'speed-up':>9} {'effic.':>7} | "
              f"{'step ms':>8} {'speed-up':>9} {'effic.':>7} | {'allreduce ms':>12} "
              f"{'buckets':>8} {'cpu/wall':>9}")
        for name, r, t, o in configs:
            step = statistics.median(x["step"] for x in results[name])
            cstep = statistics.median(x["cpu_step"] for x in results[name])
            red = statistics.median(x["reduce"] for x in results[name])
            cpu = statistics.median(x["cpu_share"] for x in results[name])
            rate = r * BATCH[kind] / step
            crate = r * BATCH[kind] / cstep
            label = f"{r}x{t}" + (" ovl" if o else "")
            print(f"{label:>10} {step * 1e3:8.2f} {rate / base_rate:8.2f}x "
                  f"{rate / base_rate / r:7.0%} | {cstep * 1e3:8.2f} {crate / cbase_rate:8.2f}x "
                  f"{crate / cbase_rate / r:7.0%} | {red * 1e3:12.3f} "
                  f"{results[name][0]['buckets']:8d} {cpu:9.2f}")
        single = [c for c in configs if c[1] == 1 and c[2] == 1]
        multi = [c for c in configs if c[1] > 1 and not c[3]]
        if single and multi:  # the scaling model, fed with this run's measurements
            from scaling_model import table as model_table
            cstep = statistics.median(x["cpu_step"] for x in results[single[0][0]])
            buckets = results[multi[0][0]][0]["buckets"]
            print("\nscaling model (docs/scaling.md), compute = 1x1 on the CPU clock:")
            print(model_table(kind, cstep, BATCH[kind], first["grad_bytes"], buckets=buckets))
    probe = _kernels.fma_peak_gflops(0.5, 2)
    print(f"\n2-thread FMA probe at the end: {probe:.0f} GFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
