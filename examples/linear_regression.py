"""Multi-output linear regression by minibatch SGD, checked against least squares.

Linnerud (scikit-learn, bundled): 20 men, 3 exercises (chins, situps, jumps)
-> 3 physiological responses (weight, waist, pulse). The model y = b + W x
(nn.Linear(3, 3), float64) is fitted by minibatch SGD with momentum on
standardized inputs (MSELoss, batches of 4, learning rate halved every 100
epochs so the minibatch noise dies out) and compared with the closed-form
solution of numpy.linalg.lstsq on [1, x].

    python examples/linear_regression.py [--smoke]
"""
import argparse
import sys
import time

import numpy as np

import neuropil
from neuropil import callbacks, nn, optim


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="fewer epochs (used by the tests)")
    args = parser.parse_args(argv)
    try:
        from sklearn.datasets import load_linnerud
    except ImportError:
        print("scikit-learn is not installed (pip install scikit-learn)", file=sys.stderr)
        return 77
    data = load_linnerud()
    x_raw, y = data.data.astype(np.float64), data.target.astype(np.float64)
    x = (x_raw - x_raw.mean(0)) / x_raw.std(0)            # standardized inputs
    print(f"Linnerud: {x.shape[0]} samples, inputs {list(data.feature_names)}, "
          f"responses {list(data.target_names)}")

    # closed form: least squares on [1, x]
    A = np.hstack([np.ones((len(x), 1)), x])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)          # (4, 3): bias row, then W.T
    b_ls, W_ls = coef[0], coef[1:].T

    neuropil.manual_seed(0)
    model = nn.Linear(3, 3, dtype=np.float64)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    epochs = 300 if args.smoke else 1500
    sched = optim.StepLR(opt, step_size=100, gamma=0.5)
    t0 = time.perf_counter()
    hist = model.fit(x, y, loss=nn.MSELoss(), optimizer=opt, epochs=epochs, batch_size=4,
                     metrics=(), callbacks=[callbacks.LRScheduler(sched)], verbose=0)
    elapsed = time.perf_counter() - t0
    b_sgd, W_sgd = model.bias.data, model.weight.data

    np.set_printoptions(precision=4, suppress=True)
    print(f"\nminibatch SGD ({epochs} epochs, {elapsed:.2f} s): final MSE "
          f"{hist.history['loss'][-1]:.4f}")
    print("W (SGD)\n", W_sgd, "\nW (lstsq)\n", W_ls)
    print("b (SGD)  ", b_sgd, "\nb (lstsq)", b_ls)
    diff = max(np.abs(W_sgd - W_ls).max(), np.abs(b_sgd - b_ls).max())
    scale = np.abs(coef).max()
    print(f"\nmax |SGD - lstsq| = {diff:.3g} (largest coefficient {scale:.3g}, "
          f"relative {diff / scale:.2e})")
    tol = 5e-2 if args.smoke else 1e-4
    assert diff / scale < tol, f"SGD does not agree with least squares: {diff / scale:.3g}"
    print(f"agrees with the closed-form least-squares solution (relative tolerance {tol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
