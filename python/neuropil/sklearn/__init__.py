"""scikit-learn estimators around neuropil networks.

    from neuropil.sklearn import NeuralClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.model_selection import GridSearchCV

    clf = make_pipeline(StandardScaler(), NeuralClassifier(module__hidden=64, epochs=40,
                                                           random_state=0))
    search = GridSearchCV(clf, {"neuralclassifier__optimizer__lr": [1e-3, 1e-2],
                                "neuralclassifier__module__hidden": [32, 128]}, cv=3)
    search.fit(X, y)

Needs scikit-learn >= 1.6 (``pip install "neuropil[sklearn]"``); ``import neuropil``
does not import this module. :class:`NeuralClassifier` and :class:`NeuralRegressor` pass
scikit-learn's ``check_estimator`` (tests/test_sklearn.py lists the checks).
"""
try:
    import sklearn as _sklearn  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("neuropil.sklearn needs scikit-learn: pip install 'neuropil[sklearn]' "
                      "(or pip install scikit-learn)") from err

from ._params import mlp
from ._estimators import NeuralClassifier, NeuralRegressor

__all__ = ["NeuralClassifier", "NeuralRegressor", "mlp"]
