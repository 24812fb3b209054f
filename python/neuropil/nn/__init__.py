"""Layers and models. Names and layouts follow PyTorch.

Layers define ``forward`` and ``backward``; models (``Sequential``, or subclasses whose
``forward`` calls their children) get their backward derived (``neuropil.nn.graph``).
"""
from .module import Module, Parameter
from .containers import Sequential, ModuleList, ModuleDict
from .graph import no_grad, is_grad_enabled, detach
from .linear import Linear, Identity, Flatten
from .activation import ReLU, Sigmoid, Tanh, Softmax, LeakyReLU, ELU, GELU, Softplus
from .dropout import Dropout, Dropout2d
from .loss import MSELoss, L1Loss, CrossEntropyLoss, NLLLoss, BCEWithLogitsLoss, BCELoss
from .rnn import RNN, LSTM, GRU, LastStep, TimeDistributed
from .embedding import Embedding
from .merge import Concat, Add
from . import utils

__all__ = ["Module", "Parameter", "Sequential", "ModuleList", "ModuleDict",
           "no_grad", "is_grad_enabled", "detach",
           "Linear", "Identity", "Flatten",
           "ReLU", "Sigmoid", "Tanh", "Softmax", "LeakyReLU", "ELU", "GELU", "Softplus",
           "Dropout", "Dropout2d",
           "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "BCELoss",
           "RNN", "LSTM", "GRU", "LastStep", "TimeDistributed", "Embedding",
           "Concat", "Add", "utils"]

from .conv import Conv2d, ConvTranspose2d  # noqa: E402
from .pool import MaxPool2d, AvgPool2d  # noqa: E402
from .summary import summary  # noqa: E402  (also attaches Module.summary)

__all__ += ["Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "summary"]

from .normalization import BatchNorm1d, BatchNorm2d  # noqa: E402
from .upsampling import Upsample, UpsamplingNearest2d, UpsamplingBilinear2d  # noqa: E402

__all__ += ["BatchNorm1d", "BatchNorm2d", "Upsample", "UpsamplingNearest2d",
            "UpsamplingBilinear2d"]
