"""Layers and models. Names and layouts follow PyTorch."""
from .module import Module, Parameter, Sequential
from .linear import Linear, Identity, Flatten
from .activation import ReLU, Sigmoid, Tanh, Softmax
from .dropout import Dropout
from .loss import MSELoss, CrossEntropyLoss, BCEWithLogitsLoss
from .rnn import RNN, LSTM, GRU, LastStep, TimeDistributed
from .embedding import Embedding
from . import utils

__all__ = ["Module", "Parameter", "Sequential",
           "Linear", "Identity", "Flatten",
           "ReLU", "Sigmoid", "Tanh", "Softmax",
           "Dropout",
           "MSELoss", "CrossEntropyLoss", "BCEWithLogitsLoss",
           "RNN", "LSTM", "GRU", "LastStep", "TimeDistributed", "Embedding", "utils"]

from .conv import Conv2d, MaxPool2d, AvgPool2d  # noqa: E402
from .summary import summary  # noqa: E402  (also attaches Module.summary)

__all__ += ["Conv2d", "MaxPool2d", "AvgPool2d", "summary"]
