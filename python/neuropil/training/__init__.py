"""The Keras-style training loop: ``Module.fit``, ``evaluate`` and ``predict``.

``loop`` holds ``fit`` (one process or data-parallel over MPI, resumable from
checkpoints, Ctrl-C aware), ``evaluation`` holds ``evaluate`` and ``predict``,
``data`` the batch sources (arrays, memory-mapped arrays, iterables of batches, a
one-batch-ahead prefetch thread) and ``_args`` the argument checks they share.
"""
from .. import nn
from ._args import DivergenceError, accuracy
from .evaluation import evaluate, predict
from .loop import fit

__all__ = ["fit", "evaluate", "predict", "DivergenceError", "accuracy"]

nn.module.register_loops(fit=fit, evaluate=evaluate, predict=predict)
