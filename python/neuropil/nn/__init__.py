"""Layers and models. Names and layouts follow PyTorch."""
from .module import Module, Parameter, Sequential

__all__ = ["Module", "Parameter", "Sequential"]
