"""Sequence classification (many-to-one): scikit-learn's 8x8 digits read row by row.

Each image is a sequence of 8 steps of 8 pixels; an LSTM (or GRU) reads the rows, the
last hidden state goes through a Linear layer to 10 classes. Stratified 80/20 split with
random_state=0, as the issue asks; trained with model.fit (Adam), reports test accuracy.

    python examples/digits_rnn.py [--cell lstm|gru] [--epochs N] [--smoke]
"""
import argparse
import sys
import time

import numpy as np

import neuropil
from neuropil import nn, optim


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="a few epochs (used by the tests)")
    parser.add_argument("--threads", type=int, default=0,
                        help="neuropil threads (0: the default; --smoke uses 1)")
    args = parser.parse_args(argv)
    if args.threads or args.smoke:  # smoke runs are tiny: one thread avoids pool wake-ups
        neuropil.set_num_threads(args.threads or 1)
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        print("digits_rnn: scikit-learn is not installed (pip install scikit-learn); "
              "it ships the digits dataset", file=sys.stderr)
        return 77

    neuropil.manual_seed(0)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, 8, 8)  # (N, T=8 rows, 8 pixels)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    epochs = 3 if args.smoke else args.epochs
    cell = nn.LSTM if args.cell == "lstm" else nn.GRU
    model = nn.Sequential(cell(8, args.hidden, rng=0), nn.LastStep(),
                          nn.Linear(args.hidden, 10, rng=1))
    print(model)
    opt = optim.Adam(model.parameters(), lr=0.005)
    t0 = time.perf_counter()
    model.fit(x_tr, y_tr, loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=epochs,
              batch_size=32, validation_data=(x_te, y_te), verbose=2, rng=0)
    wall = time.perf_counter() - t0
    acc = float((model.predict(x_te).argmax(1) == y_te).mean())
    print(f"\n{args.cell.upper()} hidden={args.hidden}: test accuracy {acc:.4f} on {len(y_te)} "
          f"images after {epochs} epochs ({wall:.1f} s training, "
          f"{neuropil.get_num_threads()} thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
