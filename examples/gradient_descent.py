"""Gradient descent on a hand-written objective with neuropil.optim.

    C(p1, p2) = (1 - p1)^2 + (1 - p2)^2 - 2 exp(-3 p1^2 - 3 p2^2)

has two local minimizers: a deep one near (0.164, 0.164), where the Gaussian
well pulls, and a shallow one near (0.982, 0.982), the bowl's centre. Plain
gradient descent (optim.SGD on one nn.Parameter) ends in one or the other
depending on where it starts; a tiny learning rate barely moves in the same
number of steps, and a rate above 1 (the bowl's curvature is 2, so steps
with lr > 1 overshoot and grow) diverges. Saves a contour plot of C with the
paths (needs matplotlib).

    python examples/gradient_descent.py [--smoke] [--out gradient_descent.png]
"""
import argparse
import sys

import numpy as np

from neuropil import nn, optim


def cost(p):
    p1, p2 = p[..., 0], p[..., 1]
    return (1 - p1) ** 2 + (1 - p2) ** 2 - 2 * np.exp(-3 * p1 ** 2 - 3 * p2 ** 2)


def grad(p):
    e = np.exp(-3 * p[0] ** 2 - 3 * p[1] ** 2)
    return np.array([-2 * (1 - p[0]) + 12 * p[0] * e, -2 * (1 - p[1]) + 12 * p[1] * e])


def descend(start, lr, steps, momentum=0.0):
    """Minimise C from ``start``; returns the path (steps+1, 2) and whether it diverged."""
    p = nn.Parameter(np.array(start, dtype=np.float64))
    opt = optim.SGD([p], lr=lr, momentum=momentum)
    path = [p.data.copy()]
    for _ in range(steps):
        opt.zero_grad()
        p.grad += grad(p.data)       # the objective's gradient, written by hand
        opt.step()
        path.append(p.data.copy())
        if not np.all(np.isfinite(p.data)) or np.abs(p.data).max() > 1e6:
            return np.array(path), True
    return np.array(path), False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="fewer steps (used by the tests)")
    parser.add_argument("--out", default="gradient_descent.png", help="contour plot (PNG)")
    args = parser.parse_args(argv)
    steps = 60 if args.smoke else 200

    print(f"C(p1, p2) = (1-p1)^2 + (1-p2)^2 - 2 exp(-3 p1^2 - 3 p2^2); SGD, {steps} steps\n")
    print(f"{'start':>14} {'lr':>7} {'end':>22} {'C(end)':>9} {'|grad|':>9}  outcome")
    runs = []
    for start, lr in [((-0.5, 0.8), 0.05), ((0.3, -0.6), 0.05), ((1.5, 1.2), 0.05),
                      ((1.0, 2.0), 0.05), ((-0.5, 0.8), 1e-4), ((-0.5, 0.8), 1.2)]:
        path, diverged = descend(start, lr, steps)
        end = path[-1]
        if diverged:
            outcome = f"diverged after {len(path) - 1} steps"
            desc = f"{'(overflow)':>22} {'-':>9} {'-':>9}"
        else:
            g = np.linalg.norm(grad(end))
            near = "deep minimum" if np.linalg.norm(end - 0.1637) < 0.05 else \
                "shallow minimum" if np.linalg.norm(end - 0.9819) < 0.05 else "not converged"
            outcome = near
            desc = f"({end[0]:9.5f}, {end[1]:9.5f}) {cost(end):9.5f} {g:9.2e}"
        print(f"({start[0]:5.2f}, {start[1]:5.2f}) {lr:7.4f} {desc}  {outcome}")
        runs.append((start, lr, path, diverged, outcome))

    outcomes = [r[4] for r in runs]
    assert outcomes[0] == "deep minimum" and outcomes[2] == "shallow minimum", outcomes
    assert outcomes[4] == "not converged" and runs[5][3], outcomes
    ends = {o: r[2][-1] for r, o in zip(runs, outcomes) if "minimum" in o}
    print(f"\nTwo local minimizers: deep at {np.round(ends['deep minimum'], 4)} "
          f"(C = {cost(ends['deep minimum']):.4f}), shallow at "
          f"{np.round(ends['shallow minimum'], 4)} (C = {cost(ends['shallow minimum']):.4f}).")
    slow = runs[4][2]
    print(f"lr=1e-4 moved only {np.linalg.norm(slow[-1] - slow[0]):.4f} in {steps} steps; "
          f"lr=1.2 overshoots the bowl (curvature 2) and diverges.")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
        return 0
    g = np.linspace(-1.2, 2.2, 300)
    P = np.stack(np.meshgrid(g, g), axis=-1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    cs = ax.contour(g, g, cost(P), levels=30, cmap="viridis", linewidths=0.7)
    fig.colorbar(cs, ax=ax, label="C(p1, p2)")
    for start, lr, path, diverged, outcome in runs:
        shown = path[:12] if diverged else path
        shown = shown[np.all(np.abs(shown) < 3, axis=1)]
        ax.plot(shown[:, 0], shown[:, 1], ".-", markersize=3, linewidth=1,
                label=f"start {start}, lr={lr:g}: {outcome}")
    ax.set_xlim(g[0], g[-1])
    ax.set_ylim(g[0], g[-1])
    ax.set_xlabel("p1")
    ax.set_ylabel("p2")
    ax.set_title("Gradient descent paths on C(p1, p2)")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"contour plot with the paths saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
