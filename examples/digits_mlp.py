"""Handwritten digits with an MLP, trained by model.fit with early stopping.

scikit-learn's bundled digits (1,797 8x8 images, 10 classes), a stratified
80/20 train/test split (random_state=0), pixels standardized with the
training set's statistics. The MLP 64-128-64-10 (ReLU, dropout) is trained
with SGD (Nesterov momentum) on softmax cross-entropy; EarlyStopping watches
the loss on a validation split (the last 10% of the training set) and
restores the best weights. Reports test accuracy (at
least 97% in full mode) and wall time.

    python examples/digits_mlp.py [--smoke] [--plot history.png]
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
    parser.add_argument("--smoke", action="store_true", help="a few epochs (used by the tests)")
    parser.add_argument("--plot", metavar="PNG", help="save the training curves here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        print("scikit-learn is not installed (pip install scikit-learn)", file=sys.stderr)
        return 77
    t_start = time.perf_counter()
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data.astype(np.float32), digits.target, test_size=0.2,
        stratify=digits.target, random_state=0)
    # standardize with the training set's statistics; +1 keeps the nearly
    # constant border pixels (values 0..16) from being blown up
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0) + 1.0
    x_train = (x_train - mean) / scale
    x_test = (x_test - mean) / scale
    print(f"digits: {len(x_train)} training and {len(x_test)} test images of 8x8 pixels, "
          f"10 classes; neuropil {neuropil.__version__} on {neuropil.get_num_threads()} "
          f"thread(s), {neuropil.get_isa()} kernels")

    neuropil.manual_seed(args.seed)
    model = nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(64, 10),
    )
    print(model)
    optimizer = optim.SGD(model.parameters(), lr=0.02, momentum=0.9, nesterov=True)
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=20, restore_best_weights=True)
    t0 = time.perf_counter()
    history = model.fit(x_train, y_train, loss=nn.CrossEntropyLoss(), optimizer=optimizer,
                        epochs=3 if args.smoke else 300, batch_size=32,
                        validation_split=0.1, callbacks=[stop],
                        verbose=0 if args.smoke else 2)
    train_time = time.perf_counter() - t0
    epochs_run = len(history.epoch)
    if stop.stopped_epoch:
        print(f"early stopping after epoch {stop.stopped_epoch + 1}; restored the weights of "
              f"epoch {stop.best_epoch + 1} (val_loss {stop.best:.4f})")

    result = model.evaluate(x_test, y_test, loss=nn.CrossEntropyLoss())
    pred = model.predict(x_test).argmax(axis=1)
    assert np.isclose(result["accuracy"], np.mean(pred == y_test))
    print(f"\ntest accuracy {result['accuracy']:.4f} (loss {result['loss']:.4f}) after "
          f"{epochs_run} epochs; training took {train_time:.1f} s "
          f"({epochs_run * len(x_train) * 0.9 / train_time:,.0f} samples/s), "
          f"whole script {time.perf_counter() - t_start:.1f} s")
    if args.plot:
        history.plot(args.plot, title="digits MLP")
        print(f"training curves saved to {args.plot}")
    if not args.smoke:
        assert result["accuracy"] >= 0.97, f"test accuracy {result['accuracy']:.4f} < 0.97"
    return 0


if __name__ == "__main__":
    sys.exit(main())
