"""Two conv + pool blocks on Fashion-MNIST (Debian's dataset-fashion-mnist, offline).

    python examples/fashion_mnist_cnn.py [--smoke] [--epochs 12] [--batch-size 64]

conv 3×3 (32) → ReLU → max-pool 2 → conv 3×3 (64) → ReLU → max-pool 2 →
Linear 3136→128 → ReLU → Linear 128→10 (the LeNet-like network of
bench/compare.py conv), SGD with momentum 0.9 and a decaying learning rate.
Full mode trains on all 60,000 images and must reach 0.91 test accuracy (the
dataset paper's two-conv-layer network: 0.916); it reports wall time and
samples/s. Exits with code 77 when the dataset is not installed.
"""
import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import neuropil  # noqa: E402
from neuropil import nn  # noqa: E402
from _cnn_common import evaluate, header, train  # noqa: E402


def load():
    from neuropil.datasets import DatasetNotFoundError, load_fashion_mnist
    try:
        (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    except DatasetNotFoundError as err:
        print(f"fashion_mnist_cnn.py: {err}", file=sys.stderr)
        sys.exit(77)
    scale = lambda x: ((x.astype(np.float32) / 255.0 - 0.2860) / 0.3530)[:, None]  # noqa: E731
    return scale(x_train), y_train, scale(x_test), y_test


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true",
                        help="1 epoch on 2,000 images (used by the tests)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    header("fashion_mnist_cnn")
    x_train, y_train, x_test, y_test = load()
    if args.smoke:
        x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:500], y_test[:500]
    neuropil.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    model[0].input_grad = False  # the images need no gradient
    model.summary((1, 28, 28))
    epochs = 1 if args.smoke else args.epochs
    t0 = time.perf_counter()
    seconds, seen = train(model, x_train, y_train, epochs=epochs, batch_size=args.batch_size,
                          lr=0.05, momentum=0.9, weight_decay=5e-4, lr_decay=0.8,
                          x_test=x_test, y_test=y_test)
    acc = evaluate(model, x_test, y_test)
    wall = time.perf_counter() - t0
    print(f"test accuracy {acc:.4f} on {len(x_test):,} images; training {seconds:.1f} s, "
          f"{seen / seconds:,.0f} samples/s ({neuropil.get_num_threads()} thread(s)); "
          f"wall time {wall:.1f} s")
    if not args.smoke and acc < 0.91:
        print("FAILED: expected at least 0.91 test accuracy", file=sys.stderr)
        sys.exit(1)
    return acc


if __name__ == "__main__":
    main()
