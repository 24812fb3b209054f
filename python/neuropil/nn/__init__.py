"""Layers and models. Names and layouts follow PyTorch."""
from .module import Module, Parameter, Sequential

__all__ = ["Module", "Parameter", "Sequential"]

from .conv import Conv2d, MaxPool2d, AvgPool2d  # noqa: E402
from .summary import summary  # noqa: E402  (also attaches Module.summary)

__all__ += ["Conv2d", "MaxPool2d", "AvgPool2d", "summary"]
