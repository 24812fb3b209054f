"""neuropil networks as scikit-learn estimators, on the handwritten digits.

1. A grid search in a pipeline: StandardScaler + NeuralClassifier, GridSearchCV over the
   learning rate (optimizer__lr) and the hidden width (module__hidden), 3-fold.
2. With the best setting, three ways to classify 10 digits on the same split: the native
   10-way softmax network, one-vs-rest (10 binary networks, OneVsRestClassifier) and
   one-vs-one (45 binary networks, OneVsOneClassifier). One table: accuracy on the held
   out quarter and training time of each.

    python examples/sklearn_digits.py [--smoke] [--seed 0]
"""
import argparse
import sys
import time

import numpy as np

import neuropil


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny grid, 2 epochs (the tests)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        from sklearn.base import clone
        from sklearn.datasets import load_digits
        from sklearn.model_selection import GridSearchCV, train_test_split
        from sklearn.multiclass import OneVsOneClassifier, OneVsRestClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from neuropil.sklearn import NeuralClassifier
    except ImportError:
        print("scikit-learn is not installed (pip install 'neuropil[sklearn]')", file=sys.stderr)
        return 77
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y, test_size=0.25, stratify=y, random_state=0)
    print(f"digits: {len(x_train)} training and {len(x_test)} test images, 10 classes; "
          f"neuropil {neuropil.__version__}, {neuropil.get_num_threads()} thread(s), "
          f"{neuropil.get_isa()} kernels\n")

    epochs = 2 if args.smoke else 40
    base = NeuralClassifier(epochs=epochs, batch_size=32, random_state=args.seed)
    grid = {"neuralclassifier__optimizer__lr": [1e-2] if args.smoke else [1e-3, 1e-2],
            "neuralclassifier__module__hidden": [16, 64] if args.smoke else [32, 128]}
    search = GridSearchCV(make_pipeline(StandardScaler(), base), grid, cv=2 if args.smoke else 3)
    t0 = time.perf_counter()
    search.fit(x_train, y_train)
    print(f"grid search ({len(search.cv_results_['params'])} settings x {search.cv} folds) "
          f"took {time.perf_counter() - t0:.1f} s")
    print(f"{'lr':>8} {'hidden':>7} {'cv accuracy':>12}")
    for params, mean, std in zip(search.cv_results_["params"],
                                 search.cv_results_["mean_test_score"],
                                 search.cv_results_["std_test_score"]):
        print(f"{params['neuralclassifier__optimizer__lr']:>8g} "
              f"{params['neuralclassifier__module__hidden']:>7} {mean:>8.4f} ± {std:.4f}")
    best = {k.split("__", 1)[1]: v for k, v in search.best_params_.items()}
    print(f"best: {best}; its test accuracy {search.score(x_test, y_test):.4f}\n")

    scaler = StandardScaler().fit(x_train)
    xs_train, xs_test = scaler.transform(x_train), scaler.transform(x_test)
    tuned = clone(base).set_params(**best)  # each meta-estimator clones it per problem
    contenders = [("softmax (one 10-way network)", clone(tuned)),
                  ("one-vs-rest (10 binary)", OneVsRestClassifier(tuned)),
                  ("one-vs-one (45 binary)", OneVsOneClassifier(tuned))]
    rows = []
    for name, model in contenders:
        t0 = time.perf_counter()
        model.fit(xs_train, y_train)
        seconds = time.perf_counter() - t0
        rows.append((name, model.score(xs_test, y_test), seconds))
    print(f"{'method':<30} {'test accuracy':>13} {'training time':>14} {'x softmax':>10}")
    for name, acc, seconds in rows:
        print(f"{name:<30} {acc:>13.4f} {seconds:>12.2f} s {seconds / rows[0][2]:>10.1f}")
    if not args.smoke:
        assert rows[0][1] >= 0.95, f"softmax test accuracy {rows[0][1]:.4f} < 0.95"
    return 0


if __name__ == "__main__":
    sys.exit(main())
