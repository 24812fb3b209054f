"""Fashion-MNIST with an MLP (the dataset paper's MLP reaches 0.883).

Data: Debian's ``dataset-fashion-mnist`` (idx files under
/usr/share/datasets/fashion-mnist/), read by neuropil.datasets. Pixels are
scaled to [0, 1] and standardized; the MLP 784-512-256-10 (ReLU, dropout) is
trained with SGD (Nesterov momentum, step decay of the learning rate) on
softmax cross-entropy, with EarlyStopping on the last 10% of the training
set. Reports test accuracy (at least 0.88 in full mode), wall time and
training throughput. Exits with code 77 when the dataset is not installed.

    python examples/fashion_mnist_mlp.py [--smoke] [--epochs N] [--save model.safetensors]
"""
import argparse
import sys
import time

import numpy as np

import neuropil
from neuropil import callbacks, datasets, nn, optim


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="2,000 training images, 1 epoch (used by the tests)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--save", metavar="PATH", help="save the trained weights (safetensors)")
    parser.add_argument("--data", metavar="DIR", help="directory with the idx files")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    try:
        (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist(args.data)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 77
    if args.smoke:
        x_train, y_train = x_train[:2000], y_train[:2000]
        x_test, y_test = x_test[:1000], y_test[:1000]
    x_train = x_train.reshape(len(x_train), -1).astype(np.float32) / 255.0
    x_test = x_test.reshape(len(x_test), -1).astype(np.float32) / 255.0
    mean, std = x_train.mean(), x_train.std()
    x_train = (x_train - mean) / std
    x_test = (x_test - mean) / std
    print(f"Fashion-MNIST: {len(x_train):,} training, {len(x_test):,} test images; "
          f"neuropil {neuropil.__version__}, {neuropil.get_num_threads()} thread(s), "
          f"{neuropil.get_isa()} kernels")

    neuropil.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(256, 10),
    )
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    epochs = 1 if args.smoke else args.epochs
    cbs = [callbacks.LRScheduler(optim.StepLR(optimizer, step_size=8, gamma=0.3)),
           callbacks.EarlyStopping(patience=4, restore_best_weights=True)]
    t0 = time.perf_counter()
    history = model.fit(x_train, y_train, loss=nn.CrossEntropyLoss(), optimizer=optimizer,
                        epochs=epochs, batch_size=args.batch_size, validation_split=0.1,
                        callbacks=cbs, verbose=0 if args.smoke else 1)
    train_time = time.perf_counter() - t0
    seen = len(history.epoch) * int(len(x_train) * 0.9)
    result = model.evaluate(x_test, y_test, loss=nn.CrossEntropyLoss())
    print(f"\ntest accuracy {result['accuracy']:.4f} (loss {result['loss']:.4f}) after "
          f"{len(history.epoch)} epochs")
    print(f"training: {train_time:.1f} s, {seen / train_time:,.0f} samples/s "
          f"(batch {args.batch_size}, validation included); whole script "
          f"{time.perf_counter() - t_start:.1f} s")
    if args.save:
        model.save(args.save, metadata={"test_accuracy": f"{result['accuracy']:.4f}"})
        print(f"weights saved to {args.save}")
    if not args.smoke and args.epochs >= 20:
        assert result["accuracy"] >= 0.88, f"test accuracy {result['accuracy']:.4f} < 0.88"
    return 0


if __name__ == "__main__":
    sys.exit(main())
