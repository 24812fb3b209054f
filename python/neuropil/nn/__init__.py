"""Layers and models. Names and layouts follow PyTorch."""
from .module import Module, Parameter, Sequential
from .linear import Linear, Identity, Flatten
from .activation import ReLU, Sigmoid, Tanh, Softmax
from .dropout import Dropout
from .loss import MSELoss, CrossEntropyLoss, BCEWithLogitsLoss

__all__ = ["Module", "Parameter", "Sequential",
           "Linear", "Identity", "Flatten",
           "ReLU", "Sigmoid", "Tanh", "Softmax",
           "Dropout",
           "MSELoss", "CrossEntropyLoss", "BCEWithLogitsLoss"]
