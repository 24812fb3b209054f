"""What the estimators build from their parameters: the module, the loss, the optimizer,
the seeded generator, and ``mlp``, the default module.

Nothing here validates in ``__init__`` (scikit-learn's rule): every check runs in ``fit``
and raises ``ValueError``/``TypeError`` naming the parameter.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import numbers

import numpy as np

from .. import _random, nn, optim
from ..callbacks import Callback

__all__ = ["mlp", "ROUTES"]

# parameters of the estimator's parts, written ``<part>__<name>`` (module__hidden=128)
ROUTES = ("module", "optimizer", "loss")

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
_OPTIMIZERS = {"adam": optim.Adam, "sgd": optim.SGD}
_LOSSES = {"cross_entropy": nn.CrossEntropyLoss, "mse": nn.MSELoss,
           "bce_with_logits": nn.BCEWithLogitsLoss}


def mlp(n_features_in: int, n_outputs: int, hidden=(100,), activation: str = "relu",
        dropout: float = 0.0) -> nn.Sequential:
    """The estimators' default module: ``Flatten``, then per width in ``hidden`` a
    ``Linear``, the ``activation`` ("relu", "tanh", "sigmoid") and, with ``dropout > 0``, a
    ``Dropout``; a last ``Linear`` to ``n_outputs`` (logits for a classifier).
    ``hidden``: an int (one hidden layer) or a sequence of ints (``()``: a linear model).
    Tuned through the estimator as ``module__hidden=(128, 64)``, ``module__dropout=0.2``."""
    widths = (hidden,) if isinstance(hidden, numbers.Integral) else hidden
    try:
        if isinstance(widths, str):
            raise TypeError
        widths = tuple(widths)
    except TypeError:
        raise TypeError(f"mlp: hidden must be an int or a sequence of ints, "
                        f"got {hidden!r}") from None
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1:
            raise ValueError(f"mlp: hidden widths must be positive ints, got {hidden!r}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"mlp: activation must be one of {sorted(_ACTIVATIONS)}, "
                         f"got {activation!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
            or not 0.0 <= dropout < 1.0:
        raise ValueError(f"mlp: dropout must be a number in [0, 1), got {dropout!r}")
    layers: list = [nn.Flatten()]
    width = int(n_features_in)
    for w in widths:
        layers += [nn.Linear(width, int(w)), _ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(float(dropout)))
        width = int(w)
    layers.append(nn.Linear(width, int(n_outputs)))
    return nn.Sequential(*layers)


def routed(params: dict, part: str) -> dict:
    """``{name: value}`` of the ``<part>__<name>`` entries of ``params``."""
    prefix = part + "__"
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def is_routed(key: str) -> bool:
    part, sep, rest = key.partition("__")
    return bool(sep) and bool(rest) and part in ROUTES


def _accepted(fn) -> set | None:
    """Names ``fn`` (a function or a class) takes as keywords; None if it takes **kwargs."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return set()
    names = set()
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
    return names


def build_module(spec, meta: dict, params: dict, owner: str):
    """The module for ``spec``: a Module instance (copied), or a class or function called
    with the ``meta`` entries it names (``n_features_in``, ``n_outputs``, ``input_shape``,
    ``n_classes``) and the ``module__`` ``params``."""
    if spec is None:
        spec = mlp
    if isinstance(spec, nn.Module):
        if params:
            raise ValueError(f"{owner}: module__{sorted(params)[0]} was given but module is "
                             f"a Module instance, which takes no parameters; pass its class "
                             f"or a function that builds it")
        return copy.deepcopy(spec)
    if not callable(spec):
        raise TypeError(f"{owner}: module must be a neuropil Module, a Module class or a "
                        f"function returning one, got {type(spec).__name__}")
    clash = sorted(set(params) & set(meta))
    if clash:
        raise ValueError(f"{owner}: module__{clash[0]} is set from the data; do not pass it")
    accepted = _accepted(spec)
    kwargs = {k: v for k, v in meta.items() if accepted is not None and k in accepted}
    kwargs.update(params)
    try:
        module = spec(**kwargs)
    except TypeError as err:
        raise TypeError(f"{owner}: building the module with {getattr(spec, '__name__', spec)}"
                        f"({', '.join(kwargs)}) failed: {err}") from err
    if not isinstance(module, nn.Module):
        raise TypeError(f"{owner}: module {getattr(spec, '__name__', spec)!r} returned "
                        f"{type(module).__name__}, not a neuropil Module")
    return module


def build_optimizer(spec, params: dict, owner: str, parameters):
    if isinstance(spec, str):
        if spec.lower() not in _OPTIMIZERS:
            raise ValueError(f"{owner}: optimizer={spec!r} is not one of {sorted(_OPTIMIZERS)}; "
                             f"or pass an optimizer class such as neuropil.optim.SGD")
        spec = _OPTIMIZERS[spec.lower()]
    if not (isinstance(spec, type) and issubclass(spec, optim.Optimizer)):
        raise TypeError(f"{owner}: optimizer must be a name ({', '.join(sorted(_OPTIMIZERS))}) "
                        f"or a neuropil.optim.Optimizer class, its settings given as "
                        f"optimizer__lr=...; got {spec!r}")
    try:
        return spec(parameters, **params)
    except TypeError as err:
        raise TypeError(f"{owner}: {spec.__name__}({', '.join(params)}) failed: {err}") from err


def build_loss(spec, params: dict, default, owner: str):
    if spec is None:
        spec = default
    if isinstance(spec, str):
        if spec not in _LOSSES:
            raise ValueError(f"{owner}: loss={spec!r} is not one of {sorted(_LOSSES)}; or pass "
                             f"a loss class or object")
        spec = _LOSSES[spec]
    if isinstance(spec, type):
        try:
            return spec(**params)
        except TypeError as err:
            raise TypeError(f"{owner}: {spec.__name__}({', '.join(params)}) failed: "
                            f"{err}") from err
    if params:
        raise ValueError(f"{owner}: loss__{sorted(params)[0]} was given but loss is an "
                         f"object; pass its class")
    if not (hasattr(spec, "forward") and hasattr(spec, "backward")):
        raise TypeError(f"{owner}: loss must be a name, a loss class or a loss object with "
                        f"forward(pred, target) and backward(), got {type(spec).__name__}")
    return copy.deepcopy(spec)


def copy_callbacks(callbacks, owner: str) -> list:
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"{owner}: callbacks must be a list of neuropil.callbacks.Callback, "
                        f"got {type(callbacks).__name__}") from None
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"{owner}: callbacks[{i}] must be a neuropil.callbacks.Callback, "
                            f"got {type(cb).__name__}")
    return copy.deepcopy(callbacks)  # fit must not change the estimator's parameters


def check_int(owner: str, name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def new_generator(random_state) -> np.random.Generator | None:
    """The estimator's own generator (None: neuropil's global one, seeded by
    ``neuropil.manual_seed``). An int gives the same numbers on every fit; a
    ``numpy.random.RandomState`` or ``Generator`` is drawn from, as scikit-learn does."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.default_rng(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(0, 2**31 - 1)))
    if isinstance(random_state, np.random.Generator):
        return np.random.default_rng(int(random_state.integers(0, 2**63 - 1)))
    raise ValueError(f"random_state must be None, an int, a numpy RandomState or Generator, "
                     f"got {random_state!r}")


@contextlib.contextmanager
def drawing_from(generator):
    """Make ``generator`` neuropil's global generator for the duration (layers draw their
    initial weights and dropout seeds from it); restore the previous one after. Not
    thread-safe: one fit at a time per process (GridSearchCV's n_jobs uses processes)."""
    if generator is None:
        yield
        return
    saved = _random._rng
    _random._rng = generator
    try:
        yield
    finally:
        _random._rng = saved
