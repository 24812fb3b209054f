"""The part of NeuralClassifier and NeuralRegressor that does not depend on the task:
parameters (with ``module__``/``optimizer__``/``loss__`` routing), building, training,
predicting and pickling."""
from __future__ import annotations

import copy
import numbers

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import _random, training
from . import _params as P

__all__ = ["NeuralEstimator"]


class NeuralEstimator(BaseEstimator):
    """Shared machinery; use :class:`NeuralClassifier` or :class:`NeuralRegressor`."""

    # set by the task classes
    _default_loss = None            # loss class when loss=None
    _metrics: tuple = ()            # fit's metrics
    _y_checks: dict = {}            # validate_data's options for y

    def __init__(self, module=None, *, loss=None, optimizer="adam", epochs=30, batch_size=32,
                 validation_split=0.0, shuffle=True, callbacks=None, warm_start=False,
                 random_state=None, verbose=0, **kwargs):
        self.module = module
        self.loss = loss
        self.optimizer = optimizer
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_split = validation_split
        self.shuffle = shuffle
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        # the parts' settings (module__hidden=128, ...), kept as given; checked by fit
        self._part_params = dict(kwargs)

    # -- parameters ----------------------------------------------------------------
    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        params.update(self._part_params)
        return params

    def set_params(self, **params):
        own = {k: params.pop(k) for k in list(params)
               if P.is_routed(k) or k in self._part_params}
        if params:
            super().set_params(**params)
        self._part_params.update(own)
        return self

    def _routed(self, part: str) -> dict:
        return P.routed(self._part_params, part)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags

    # -- validation ----------------------------------------------------------------
    def _check_settings(self) -> None:
        name = type(self).__name__
        unknown = sorted(k for k in self._part_params if not P.is_routed(k))
        if unknown:
            raise TypeError(f"{name}: unknown parameter {unknown[0]!r}; settings of the "
                            f"parts are written "
                            f"{', '.join(r + '__<name>' for r in P.ROUTES)}")
        P.check_int(name, "epochs", self.epochs, 0)
        P.check_int(name, "batch_size", self.batch_size, 1)
        P.check_int(name, "verbose", self.verbose, 0)
        vs = self.validation_split
        if isinstance(vs, bool) or not isinstance(vs, numbers.Real) or not 0.0 <= vs < 1.0:
            raise ValueError(f"{name}: validation_split must be a number in [0, 1), got {vs!r}")
        if not isinstance(self.shuffle, (bool, np.bool_)):
            raise TypeError(f"{name}: shuffle must be True or False, got {self.shuffle!r}")

    def _validate_x(self, X, reset: bool):
        X = validate_data(self, X, reset=reset, allow_nd=True, dtype=(np.float32, np.float64))
        return self._check_input_shape(X, reset)

    def _validate_xy(self, X, y, reset: bool):
        X, y = validate_data(self, X, y, reset=reset, allow_nd=True,
                             dtype=(np.float32, np.float64), **self._y_checks)
        return self._check_input_shape(X, reset), y

    def _check_input_shape(self, X, reset: bool):
        if reset:
            self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        elif tuple(X.shape[1:]) != self.input_shape_:
            raise ValueError(f"X has samples of shape {tuple(X.shape[1:])}, but "
                             f"{type(self).__name__} was fitted on samples of shape "
                             f"{self.input_shape_}")
        return X

    # -- building ------------------------------------------------------------------
    def _meta(self) -> dict:
        """What a module-building function may ask for by name."""
        return {"n_features_in": int(np.prod(self.input_shape_)),
                "input_shape": self.input_shape_, "n_outputs": self.n_outputs_}

    def _build_loss(self) -> None:
        self._loss_recipe = (self.loss, self._routed("loss"))
        self.loss_ = P.build_loss(*self._loss_recipe, default=self._default_loss,
                                  owner=type(self).__name__)

    def _build_model(self, X) -> None:
        """Module and optimizer for the data (``input_shape_``, ``n_outputs_``), the initial
        weights drawn from the estimator's generator; the module's output is checked on
        one sample before any training."""
        name = type(self).__name__
        self._module_recipe = (self.module, self._meta(), self._routed("module"))
        with P.drawing_from(self._rng):
            self.module_ = P.build_module(*self._module_recipe, owner=name)
        self._check_output(X)
        self._optimizer_recipe = (self.optimizer, self._routed("optimizer"))
        self.optimizer_ = P.build_optimizer(*self._optimizer_recipe, owner=name,
                                            parameters=self.module_.parameters())
        self.callbacks_ = P.copy_callbacks(self.callbacks, name)
        self.history_ = {}

    def _check_output(self, X) -> None:
        x = np.ascontiguousarray(X[:1], dtype=self._dtype())
        out = training.predict(self.module_, x)
        if out.shape != (1, self.n_outputs_):
            raise ValueError(f"{type(self).__name__}: the module maps a sample of shape "
                             f"{self.input_shape_} to {out.shape[1:]}, but this task needs "
                             f"({self.n_outputs_},) per sample ({self._outputs_meaning()}); "
                             f"a building function receives n_outputs for that")

    def _dtype(self):
        for p in self.module_.parameters():
            return p.data.dtype
        return np.dtype(np.float32)

    # -- training ------------------------------------------------------------------
    def _train(self, X, y, epochs: int) -> None:
        X = np.ascontiguousarray(X, dtype=self._dtype())
        validation = None
        if self.validation_split:
            n = X.shape[0]
            n_val = int(n * self.validation_split)
            if n_val < 1 or n_val >= n:
                raise ValueError(f"{type(self).__name__}: validation_split="
                                 f"{self.validation_split} of {n} samples leaves an empty "
                                 f"training or validation set")
            gen = self._rng if self._rng is not None else _random.get_rng(None)
            order = gen.permutation(n)
            val, keep = order[:n_val], np.sort(order[n_val:])
            validation = (X[val], y[val])
            X, y = X[keep], y[keep]
        with P.drawing_from(self._rng):
            history = training.fit(
                self.module_, X, y, loss=self.loss_, optimizer=self.optimizer_, epochs=epochs,
                batch_size=self.batch_size, shuffle=bool(self.shuffle),
                validation_data=validation, callbacks=self.callbacks_,
                metrics=self._metrics, verbose=self.verbose, rng=self._rng)
        for key, values in history.history.items():
            self.history_.setdefault(key, []).extend(values)
        self.n_iter_ = getattr(self, "n_iter_", 0) + len(history.epoch)

    def _fit(self, X, y, *, epochs: int, incremental: bool, classes=None):
        """fit (``incremental=False``: a fresh model unless warm_start) and partial_fit."""
        self._check_settings()
        if hasattr(self, "module_") and (incremental or self.warm_start):
            X, y = self._validate_xy(X, y, reset=False)
            y = self._encode_targets(y, keep=True, classes=classes)
        else:
            self._forget_fit()
            try:  # all or nothing: a failed build leaves the estimator unfitted
                X, y = self._validate_xy(X, y, reset=True)
                self._rng = P.new_generator(self.random_state)
                self.n_iter_ = 0
                self._build_loss()
                y = self._encode_targets(y, keep=False, classes=classes)
                self._build_model(X)
            except BaseException:
                self._forget_fit()
                raise
        self._train(X, y, epochs)
        return self

    _FIT_STATE = ("_rng", "_module_recipe", "_loss_recipe", "_optimizer_recipe", "_y_1d")

    def _forget_fit(self) -> None:
        """Remove every fitted attribute (``*_``) and the private state of a fit."""
        for key in list(vars(self)):
            if (key.endswith("_") and not key.startswith("__")) or key in self._FIT_STATE:
                delattr(self, key)

    # -- predicting ----------------------------------------------------------------
    def _forward(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = self._validate_x(X, reset=False)
        X = np.ascontiguousarray(X, dtype=self._dtype())
        return training.predict(self.module_, X, batch_size=max(256, int(self.batch_size)))

    # -- pickling: weights as arrays, rebuilt into a fresh module on load ----------------
    def __getstate__(self):
        state = dict(super().__getstate__())
        module = state.pop("module_", None)
        if module is not None:
            state["_module_weights"] = module.state_dict()
            optimizer = state.pop("optimizer_", None)
            state["_optimizer_state"] = optimizer.state_dict() if optimizer else None
            state.pop("loss_", None)  # rebuilt: it holds the last batch's arrays
            callbacks = []
            for cb in state.get("callbacks_", []):
                cb = copy.copy(cb)
                cb.model = cb.optimizer = None  # a fitted model travels only as weights
                callbacks.append(cb)
            state["callbacks_"] = callbacks
        return state

    def __setstate__(self, state):
        state = dict(state)
        weights = state.pop("_module_weights", None)
        optimizer_state = state.pop("_optimizer_state", None)
        super().__setstate__(state)
        if weights is None:
            return
        name = type(self).__name__
        with P.drawing_from(np.random.default_rng(0)):  # leave the global generator alone
            module = P.build_module(*self._module_recipe, owner=name)
        module.load_state_dict(weights)
        self.module_ = module
        self.loss_ = P.build_loss(*self._loss_recipe, default=self._default_loss, owner=name)
        self.optimizer_ = P.build_optimizer(*self._optimizer_recipe, owner=name,
                                            parameters=module.parameters())
        if optimizer_state is not None:
            self.optimizer_.load_state_dict(optimizer_state)
