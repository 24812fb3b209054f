"""A small CNN on scikit-learn's digits (1,797 8×8 images, 10 classes).

    python examples/digits_cnn.py [--smoke] [--epochs 30]

Stratified 80/20 split (random_state=0); conv 3×3 (32) → ReLU → conv 3×3 (64)
→ ReLU → max-pool 2 → dropout 0.3 → Linear 1024→128 → ReLU → Linear 128→10,
SGD with momentum and weight decay, trained with the Keras-style ``model.fit``.
Full mode reaches at least 98% test accuracy (asserted).
"""
import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import neuropil  # noqa: E402
from neuropil import nn  # noqa: E402
from neuropil import optim  # noqa: E402
from neuropil.callbacks import LRScheduler  # noqa: E402
from _cnn_common import evaluate, header  # noqa: E402


def load():
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        print(f"digits_cnn.py: needs scikit-learn ({err}); pip install scikit-learn",
              file=sys.stderr)
        sys.exit(77)
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8), NCHW
    return train_test_split(x, d.target.astype(np.int64), test_size=0.2, stratify=d.target,
                            random_state=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="2 epochs (used by the tests)")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    header("digits_cnn")
    x_train, x_test, y_train, y_test = load()
    neuropil.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
        nn.Linear(128, 10))
    model.summary((1, 8, 8))
    epochs = 2 if args.smoke else args.epochs
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    t0 = time.perf_counter()
    history = model.fit(x_train, y_train, loss=nn.CrossEntropyLoss(), optimizer=opt,
                        epochs=epochs, batch_size=32, rng=0,
                        validation_data=None if args.smoke else (x_test, y_test),
                        callbacks=[LRScheduler(optim.ExponentialLR(opt, gamma=0.93))],
                        verbose=2)
    seconds = time.perf_counter() - t0
    seen = epochs * len(x_train)
    acc = evaluate(model, x_test, y_test)
    print(f"test accuracy {acc:.4f} on {len(x_test)} images; training {seconds:.1f} s "
          f"({seen / seconds:,.0f} samples/s, validation included); "
          f"final training loss {history.history['loss'][-1]:.4f}")
    if not args.smoke and acc < 0.98:
        print("FAILED: expected at least 98% test accuracy", file=sys.stderr)
        sys.exit(1)
    return acc


if __name__ == "__main__":
    main()
