"""Optimizers and learning-rate schedules (PyTorch's algorithms and names)."""
from . import lr_scheduler
from .adam import Adam
from .lr_scheduler import ExponentialLR, ReduceLROnPlateau, StepLR
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "StepLR", "ExponentialLR", "ReduceLROnPlateau",
           "lr_scheduler"]
