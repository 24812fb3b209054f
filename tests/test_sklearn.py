"""neuropil.sklearn: scikit-learn's estimator checks, then the estimators at work on the
digits (Pipeline, GridSearchCV, cross_val_score, one-vs-rest and one-vs-one around a
binary NeuralClassifier), parameters, pickling, partial_fit and errors."""
import copy
import pickle

import numpy as np
import pytest

import neuropil
from neuropil import callbacks, nn, optim

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.multiclass import OneVsOneClassifier, OneVsRestClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from neuropil.sklearn import NeuralClassifier, NeuralRegressor, mlp  # noqa: E402

# Checks scikit-learn skips for these estimators, and why (README "scikit-learn
# estimators" repeats this list):
#   check_array_api_input - neuropil computes in NumPy; array-API namespaces (CuPy,
#       torch tensors) are not accepted (array_api_support is False), and the check itself
#       runs only with SCIPY_ARRAY_API=1.
# With pandas absent, check_*_data_not_an_array skips its DataFrame part as well.
SKIPPED_CHECKS = {"check_array_api_input"}

# small, quick settings: the checks fit a few hundred models
CHECKED = [NeuralClassifier(module__hidden=16, epochs=20, optimizer__lr=0.02, random_state=0),
           NeuralRegressor(module__hidden=16, epochs=20, optimizer__lr=0.02, random_state=0)]


@parametrize_with_checks(CHECKED)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", CHECKED, ids=lambda e: type(e).__name__)
def test_only_the_documented_checks_skip(estimator):
    from sklearn.utils.estimator_checks import check_estimator
    results = check_estimator(clone(estimator), on_skip=None, on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    allowed = set(SKIPPED_CHECKS)
    try:
        import pandas  # noqa: F401
    except ImportError:
        allowed |= {"check_classifier_data_not_an_array", "check_regressor_data_not_an_array"}
    assert not failed and skipped <= allowed, (failed, skipped - allowed)
    assert len(results) > 50


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return train_test_split(x.astype(np.float32), y, test_size=0.3, stratify=y, random_state=0)


def _quick(**kw):
    params = dict(module__hidden=32, epochs=8, optimizer__lr=0.01, random_state=0)
    params.update(kw)
    return NeuralClassifier(**params)


def test_pipeline_and_grid_search_over_lr_and_width(digits):
    x_train, x_test, y_train, y_test = digits
    pipe = make_pipeline(StandardScaler(), _quick())
    grid = {"neuralclassifier__optimizer__lr": [1e-4, 1e-2],
            "neuralclassifier__module__hidden": [4, 32]}
    search = GridSearchCV(pipe, grid, cv=3).fit(x_train, y_train)
    scores = dict(zip(map(lambda p: (p["neuralclassifier__optimizer__lr"],
                                     p["neuralclassifier__module__hidden"]),
                          search.cv_results_["params"]), search.cv_results_["mean_test_score"]))
    # a tiny lr and width learn visibly less in 8 epochs: the grid really varies them
    assert scores[(1e-2, 32)] > scores[(1e-4, 4)] + 0.2
    assert search.best_params_ == {"neuralclassifier__optimizer__lr": 1e-2,
                                   "neuralclassifier__module__hidden": 32}
    best = search.best_estimator_[-1]
    assert best.module_[1].out_features == 32 and best.optimizer_.param_groups[0]["lr"] == 1e-2
    assert search.score(x_test, y_test) > 0.9


def test_cross_val_score(digits):
    x_train, _, y_train, _ = digits
    scores = cross_val_score(make_pipeline(StandardScaler(), _quick()), x_train, y_train, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.88


@pytest.mark.parametrize("meta", [OneVsRestClassifier, OneVsOneClassifier])
def test_one_vs_rest_and_one_vs_one_around_a_binary_classifier(meta, digits):
    x_train, x_test, y_train, y_test = digits
    scaler = StandardScaler().fit(x_train)
    model = meta(_quick(epochs=5)).fit(scaler.transform(x_train), y_train)
    n = 10 if meta is OneVsRestClassifier else 45
    assert len(model.estimators_) == n
    for est in model.estimators_:  # each one is a binary neuropil network
        assert est.classes_.size == 2 and est.n_outputs_ == 2
        assert est.module_[-1].out_features == 2
    assert model.score(scaler.transform(x_test), y_test) > 0.9


def test_label_types_and_probabilities(digits):
    x_train, x_test, y_train, _ = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    clf = _quick(epochs=3).fit(x_train / 16, names[y_train])
    assert list(clf.classes_) == sorted(names)
    proba = clf.predict_proba(x_test / 16)
    assert proba.shape == (len(x_test), 10) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(x_test / 16), clf.classes_[proba.argmax(1)])
    # a single logit with BCE for two classes: the sigmoid is P(classes_[1])
    two = np.isin(y_train, (3, 8))
    b = _quick(loss="bce_with_logits").fit(x_train[two] / 16, np.where(y_train[two] == 3, "a", "b"))
    assert b.n_outputs_ == 1 and b.module_[-1].out_features == 1
    p = b.predict_proba(x_train[two] / 16)
    np.testing.assert_array_equal(b.predict(x_train[two] / 16), b.classes_[(p[:, 1] > 0.5) * 1])
    assert b.score(x_train[two] / 16, np.where(y_train[two] == 3, "a", "b")) > 0.9


def test_nested_parameters_get_set_clone():
    clf = NeuralClassifier(module__hidden=128, optimizer="sgd", optimizer__lr=0.01,
                           optimizer__momentum=0.9)
    params = clf.get_params()
    assert params["module__hidden"] == 128 and params["optimizer__lr"] == 0.01
    clf.set_params(module__hidden=(8, 4), optimizer__lr=0.5, epochs=2)
    assert clf.get_params()["module__hidden"] == (8, 4) and clf.epochs == 2
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and twin is not clf
    assert not hasattr(twin, "module_")
    x = np.random.default_rng(0).standard_normal((40, 5))
    y = np.arange(40) % 3
    clf.fit(x, y)
    assert [m.out_features for m in clf.module_ if isinstance(m, nn.Linear)] == [8, 4, 3]
    assert isinstance(clf.optimizer_, optim.SGD)
    g = clf.optimizer_.param_groups[0]
    assert g["lr"] == 0.5 and g["momentum"] == 0.9
    with pytest.raises(ValueError, match="Invalid parameter"):
        clf.set_params(epoch=3)


def test_module_forms_and_data_dependent_sizes(digits):
    x_train, x_test, y_train, y_test = digits
    images = (x_train / 16).reshape(-1, 1, 8, 8)
    seen = {}

    def cnn(input_shape, n_classes, channels=4):
        seen.update(input_shape=input_shape, n_classes=n_classes)
        return nn.Sequential(nn.Conv2d(input_shape[0], channels, 3, padding=1), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(channels * 16, n_classes))

    clf = NeuralClassifier(cnn, module__channels=6, epochs=4, optimizer__lr=0.01,
                           random_state=0).fit(images, y_train)
    assert seen == {"input_shape": (1, 8, 8), "n_classes": 10}
    assert clf.n_features_in_ == 1 and clf.input_shape_ == (1, 8, 8)
    assert clf.score((x_test / 16).reshape(-1, 1, 8, 8), y_test) > 0.8
    with pytest.raises(ValueError, match="shape"):
        clf.predict((x_test / 16).reshape(-1, 1, 4, 16))

    # a graph model (skip connection) as the module, its width a parameter
    class Residual(nn.Module):
        def __init__(self, n_features_in, n_classes, width=16):
            super().__init__()
            self.inp, self.fc = nn.Linear(n_features_in, width), nn.Linear(width, width)
            self.act, self.add = nn.ReLU(), nn.Add()
            self.out = nn.Linear(width, n_classes)

        def forward(self, x):
            h = self.act(self.inp(x))
            return self.out(self.act(self.add(h, self.fc(h))))

    res = NeuralClassifier(Residual, module__width=24, epochs=4, optimizer__lr=0.01,
                           random_state=0).fit(x_train / 16, y_train)
    assert res.module_.fc.out_features == 24 and res.score(x_test / 16, y_test) > 0.9

    # a Module instance: copied at each fit, the instance itself untouched
    neuropil.manual_seed(0)
    template = nn.Sequential(nn.Linear(64, 10))
    before = template.state_dict()
    a = NeuralClassifier(template, epochs=2, random_state=0).fit(x_train / 16, y_train)
    b = NeuralClassifier(template, epochs=2, random_state=0).fit(x_train / 16, y_train)
    for k, v in template.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert a.module_ is not template
    np.testing.assert_array_equal(a.predict_proba(x_test), b.predict_proba(x_test))


def test_same_seed_same_model_and_global_seed(digits):
    x_train, x_test, y_train, _ = digits
    kw = dict(module__dropout=0.3, validation_split=0.2)
    p1 = _quick(**kw).fit(x_train, y_train).predict_proba(x_test)
    p2 = _quick(**kw).fit(x_train, y_train).predict_proba(x_test)
    np.testing.assert_array_equal(p1, p2)
    p3 = _quick(random_state=1, **kw).fit(x_train, y_train).predict_proba(x_test)
    assert not np.array_equal(p1, p3)
    # random_state=None draws from neuropil's generator: manual_seed makes it repeatable
    neuropil.manual_seed(5)
    q1 = _quick(random_state=None).fit(x_train, y_train).predict_proba(x_test)
    neuropil.manual_seed(5)
    q2 = _quick(random_state=None).fit(x_train, y_train).predict_proba(x_test)
    np.testing.assert_array_equal(q1, q2)
    # ...and a seeded fit leaves the global generator where it was
    neuropil.manual_seed(5)
    _quick().fit(x_train[:50], y_train[:50])
    np.testing.assert_array_equal(neuropil._random.get_rng().random(3),
                                  np.random.default_rng(5).random(3))


def test_pickle_carries_arrays_and_partial_fit_continues(digits):
    x_train, x_test, y_train, _ = digits
    clf = _quick(epochs=2).fit(x_train, y_train)
    blob = pickle.dumps(clf)
    assert b"neuropil.nn" not in blob and b"neuropil.optim" not in blob  # no layer objects
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.predict_proba(x_test), clf.predict_proba(x_test))
    assert back.module_ is not clf.module_
    # the optimizer state and the generator travel too: both continue identically
    clf.partial_fit(x_train, y_train)
    back.partial_fit(x_train, y_train)
    np.testing.assert_array_equal(back.predict_proba(x_test), clf.predict_proba(x_test))
    assert len(clf.history_["loss"]) == 3 and clf.n_iter_ == 3
    # an unfitted estimator pickles as its parameters
    assert pickle.loads(pickle.dumps(_quick())).get_params() == _quick().get_params()


def test_partial_fit_classes(digits):
    x_train, _, y_train, _ = digits
    clf = _quick()
    first = y_train < 5
    clf.partial_fit(x_train[first], y_train[first], classes=np.arange(10))
    assert clf.classes_.size == 10 and clf.n_iter_ == 1
    clf.partial_fit(x_train[~first], y_train[~first])
    other = _quick().partial_fit(x_train[first], y_train[first])
    with pytest.raises(ValueError, match=r"labels \[5, 6, 7, 8, 9\] not seen"):
        other.partial_fit(x_train[~first], y_train[~first])
    with pytest.raises(ValueError, match="not in classes"):
        _quick().partial_fit(x_train, y_train, classes=[0, 1])
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(x_train[:, :10], y_train)


def test_warm_start_continues(digits):
    x_train, _, y_train, _ = digits
    clf = _quick(epochs=2, warm_start=True).fit(x_train, y_train)
    module = clf.module_
    clf.fit(x_train, y_train)
    assert clf.module_ is module and clf.n_iter_ == 4
    clf.set_params(warm_start=False).fit(x_train, y_train)
    assert clf.module_ is not module and clf.n_iter_ == 2


def test_callbacks_and_validation_split(digits):
    x_train, _, y_train, _ = digits
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    clf = _quick(epochs=200, validation_split=0.25, callbacks=[stop],
                 optimizer__lr=0.05).fit(x_train, y_train)
    assert "val_loss" in clf.history_ and "val_accuracy" in clf.history_
    assert clf.n_iter_ < 200 and clf.callbacks_[0].stopped_epoch > 0
    assert stop.model is None and stop.stopped_epoch == 0  # the parameter is not touched
    with pytest.raises(ValueError, match="validation_split"):
        _quick(validation_split=1.5).fit(x_train, y_train)


def test_regressor_single_and_multi_output():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 6)).astype(np.float32)
    w = rng.standard_normal((6, 3))
    y = np.tanh(x @ w)
    reg = NeuralRegressor(module__hidden=32, epochs=40, optimizer__lr=0.01, random_state=0)
    reg.fit(x, y)
    assert reg.predict(x).shape == (300, 3) and reg.n_outputs_ == 3
    assert reg.score(x, y) > 0.9
    one = clone(reg).fit(x, y[:, 0])
    assert one.predict(x).shape == (300,) and one.predict(x).dtype == np.float64
    assert one.score(x, y[:, 0]) > 0.9
    with pytest.raises(ValueError, match="target"):
        one.partial_fit(x, y)


def test_errors_name_the_parameter(digits):
    x_train, _, y_train, _ = digits
    x, y = x_train[:50], y_train[:50]
    with pytest.raises(ValueError, match="one class only"):
        _quick().fit(x, np.zeros(50))
    with pytest.raises(ValueError, match="Unknown label type"):
        _quick().fit(x, np.linspace(0, 1, 50))
    with pytest.raises(TypeError, match="unknown parameter 'modul__hidden'"):
        NeuralClassifier(modul__hidden=3).fit(x, y)
    with pytest.raises(ValueError, match="epochs"):
        _quick(epochs=-1).fit(x, y)
    with pytest.raises(TypeError, match="optimizer"):
        _quick(optimizer=optim.SGD([nn.Parameter([1.0])])).fit(x, y)
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        _quick(optimizer="rmsprop").fit(x, y)
    bad = NeuralClassifier(lambda n_features_in: nn.Linear(n_features_in, 3))
    with pytest.raises(ValueError, match=r"needs \(10,\) per sample"):
        bad.fit(x, y)
    with pytest.raises(NotFittedError):  # a failed fit leaves nothing half-built
        bad.predict(x)
    fitted = _quick(epochs=1).fit(x, y)
    with pytest.raises(ValueError, match="one class only"):
        fitted.fit(x, np.zeros(50))
    assert not hasattr(fitted, "module_") and not hasattr(fitted, "classes_")
    with pytest.raises(TypeError, match="not a neuropil Module"):
        NeuralClassifier(lambda: "model").fit(x, y)
    with pytest.raises(ValueError, match="Module instance"):
        NeuralClassifier(nn.Linear(64, 10), module__hidden=3).fit(x, y)
    with pytest.raises(TypeError, match="mlp"):
        NeuralClassifier(module__hidden="wide").fit(x, y)
    with pytest.raises(ValueError, match="n_features_in"):
        NeuralClassifier(module__n_features_in=3).fit(x, y)
    with pytest.raises(ValueError, match="NaN"):
        _quick().fit(np.full_like(x, np.nan), y)
    with pytest.raises(ValueError, match="BCEWithLogitsLoss"):
        _quick(loss="bce_with_logits").fit(x, y)


def test_mlp_builder():
    model = mlp(5, 3, hidden=(7, 6), activation="tanh", dropout=0.1)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Flatten", "Linear", "Tanh", "Dropout", "Linear", "Tanh", "Dropout",
                     "Linear"]
    assert [type(m).__name__ for m in mlp(5, 3, hidden=())] == ["Flatten", "Linear"]
    for bad in (dict(hidden=0), dict(activation="swish"), dict(dropout=1.0)):
        with pytest.raises(ValueError):
            mlp(5, 3, **bad)


def test_deepcopy_of_fitted_estimator(digits):
    x_train, x_test, y_train, _ = digits
    clf = _quick(epochs=1).fit(x_train, y_train)
    twin = copy.deepcopy(clf)
    np.testing.assert_array_equal(twin.predict(x_test), clf.predict(x_test))
