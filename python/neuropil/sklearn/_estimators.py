"""NeuralClassifier and NeuralRegressor: neuropil models as scikit-learn estimators."""
from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets

from .. import nn
from ._base import NeuralEstimator

__all__ = ["NeuralClassifier", "NeuralRegressor"]

_COMMON_DOC = """
    Parameters
    ----------
    module : neuropil Module, Module class, function or None (default)
        The network. A class or function is called with the data-dependent sizes it names
        among ``n_features_in`` (features per sample, flattened), ``input_shape`` (one
        sample's shape), ``n_outputs`` (outputs the task needs{n_classes_doc}) and with the
        ``module__*`` parameters: ``module__hidden=128`` calls it with ``hidden=128``. A
        Module instance is deep-copied at each fit (its current weights are the start; a
        class or function gives fresh weights drawn from ``random_state``). None: the
        built-in :func:`neuropil.sklearn.mlp` (``module__hidden``, ``module__activation``,
        ``module__dropout``).
    loss : name, loss class, loss object or None
        {loss_doc} ``loss__*`` parameters go to a loss class.
    optimizer : "adam" (default), "sgd" or a ``neuropil.optim.Optimizer`` class
        Built over the module's parameters with the ``optimizer__*`` parameters
        (``optimizer__lr=0.01``, ``optimizer__momentum=0.9``); unset ones keep the class's
        defaults (Adam: lr 1e-3).
    epochs : int, default 30
        Passes over the data in ``fit`` (``partial_fit`` makes one).
    batch_size : int, default 32
    validation_split : float in [0, 1), default 0
        Share of the samples, drawn at random, held out from training and evaluated after
        each epoch (``val_loss`` in ``history_``, for callbacks such as EarlyStopping).
    shuffle : bool, default True
        Reshuffle the training samples every epoch.
    callbacks : list of ``neuropil.callbacks.Callback`` or None
        Copied at each fit (the fitted copies are ``callbacks_``).
    warm_start : bool, default False
        ``fit`` continues from the fitted model instead of building a new one.
    random_state : None, int or numpy RandomState/Generator
        Seeds the initial weights, the shuffles, dropout and the validation split. An int
        makes fits repeatable bitwise (any thread count); None uses neuropil's global
        generator (``neuropil.manual_seed``).
    verbose : int, default 0
        0 silent, 1 progress bar, 2 one line per epoch.

    Attributes
    ----------
    module_, optimizer_, loss_, callbacks_ : the fitted parts.
    history_ : dict of per-epoch lists (``loss``, ``val_loss``, ...), across partial_fits.
    n_features_in_, feature_names_in_, input_shape_, n_outputs_, n_iter_ (epochs run).

    The fitted estimator pickles as its parameters plus arrays (the module's
    ``state_dict`` and the optimizer's state); unpickling builds the module again and
    loads the arrays. A module given as a function must be importable (not a lambda).
    Fits run one at a time per process: use process-based parallelism (joblib's default)
    for ``n_jobs``.
"""


class NeuralClassifier(ClassifierMixin, NeuralEstimator):
    """A neuropil network as a scikit-learn classifier (pipelines, grid search,
    cross-validation, OneVsRestClassifier / OneVsOneClassifier).

    Labels of any type are encoded as ``0..n_classes-1`` in the order of ``classes_``.
    The module returns one logit per class; predict_proba is their softmax. With
    ``loss="bce_with_logits"`` a binary problem uses a single logit instead (its
    sigmoid is the probability of ``classes_[1]``).
    """ + _COMMON_DOC.format(
        n_classes_doc="; ``n_classes`` too",
        loss_doc="Default ``nn.CrossEntropyLoss`` on the logits; ``\"bce_with_logits\"`` (two "
                 "classes, one output).")

    _default_loss = nn.CrossEntropyLoss
    _metrics = ("accuracy",)
    _y_checks = {"multi_output": False}

    def fit(self, X, y):
        """Train a new network on ``X (n_samples, ...)`` and labels ``y (n_samples,)``."""
        return self._fit(X, y, epochs=self.epochs, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``, continuing from the fitted network (with its optimizer
        state). The first call builds the network: pass every label in ``classes`` then
        (default: the labels of this ``y``); later calls may not bring new labels."""
        return self._fit(X, y, epochs=1, incremental=True, classes=classes)

    def _single_logit(self) -> bool:
        return isinstance(self.loss_, nn.BCEWithLogitsLoss)

    def _encode_targets(self, y, keep: bool, classes=None):
        name = type(self).__name__
        check_classification_targets(y)
        if not keep:
            labels = np.unique(y if classes is None else np.asarray(classes))
            if classes is not None:
                unknown = np.setdiff1d(np.unique(y), labels)
                if unknown.size:
                    raise ValueError(f"{name}: y holds labels {unknown.tolist()} that are not "
                                     f"in classes={list(labels)}")
            if labels.size < 2:
                raise ValueError(f"{name}: y holds one class only ({labels.tolist()}); a "
                                 f"classifier needs at least two classes")
            if self._single_logit() and labels.size != 2:
                raise ValueError(f"{name}: loss BCEWithLogitsLoss models two classes with one "
                                 f"output, but y has {labels.size}; use the default "
                                 f"CrossEntropyLoss")
            self.classes_ = labels
            self.n_outputs_ = 1 if self._single_logit() else int(labels.size)
        else:
            unknown = np.setdiff1d(np.unique(y), self.classes_)
            if unknown.size:
                raise ValueError(f"{name}: y holds labels {unknown.tolist()} not seen when the "
                                 f"network was built (classes_ = {self.classes_.tolist()}); "
                                 f"pass every label in classes= on the first partial_fit")
        codes = np.searchsorted(self.classes_, y).astype(np.int64)
        if self._single_logit():
            return codes.astype(np.float32).reshape(-1, 1)
        return codes

    def _meta(self) -> dict:
        return {**super()._meta(), "n_classes": int(self.classes_.size)}

    def _outputs_meaning(self) -> str:
        return ("one logit for classes_[1]" if self._single_logit()
                else f"one logit per class, {self.classes_.size} classes")

    def predict_proba(self, X) -> np.ndarray:
        """``(n_samples, n_classes)`` class probabilities, columns in ``classes_`` order."""
        z = self._forward(X).astype(np.float64)
        if self.n_outputs_ == 1:
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def predict(self, X) -> np.ndarray:
        """The most probable label of each sample (an element of ``classes_``)."""
        z = self._forward(X)
        if self.n_outputs_ == 1:
            return self.classes_[(z[:, 0] > 0).astype(np.int64)]
        return self.classes_[np.argmax(z, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        tags.target_tags.multi_output = False
        return tags


class NeuralRegressor(RegressorMixin, NeuralEstimator):
    """A neuropil network as a scikit-learn regressor: targets ``(n_samples,)`` or
    ``(n_samples, n_targets)``; the module returns ``n_outputs`` values per sample.
    ``score`` is R²; predictions are float64.
    """ + _COMMON_DOC.format(n_classes_doc="",
                             loss_doc="Default ``nn.MSELoss``.")

    _default_loss = nn.MSELoss
    _metrics = ()
    _y_checks = {"multi_output": True, "y_numeric": True}

    def fit(self, X, y):
        """Train a new network on ``X (n_samples, ...)`` and ``y (n_samples[, n_targets])``."""
        return self._fit(X, y, epochs=self.epochs, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over ``(X, y)``, continuing from the fitted network (built on the first
        call)."""
        return self._fit(X, y, epochs=1, incremental=True)

    def _encode_targets(self, y, keep: bool, classes=None):
        y = np.asarray(y, dtype=np.float64)
        targets = y.reshape(-1, 1) if y.ndim == 1 else y.reshape(y.shape[0], -1)
        if not keep:
            self._y_1d = y.ndim == 1
            self.n_outputs_ = int(targets.shape[1])
        elif targets.shape[1] != self.n_outputs_:
            raise ValueError(f"{type(self).__name__}: y has {targets.shape[1]} target(s) per "
                             f"sample, the network was built for {self.n_outputs_}")
        return targets

    def _outputs_meaning(self) -> str:
        return f"{self.n_outputs_} target(s)"

    def predict(self, X) -> np.ndarray:
        """``(n_samples,)`` predictions (``(n_samples, n_targets)`` for 2-D targets)."""
        out = self._forward(X).astype(np.float64)
        return out[:, 0] if self._y_1d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
