"""Layers and models. Names and layouts follow PyTorch."""
from .module import Module, Parameter, Sequential
from .rnn import RNN, LSTM, GRU, LastStep, TimeDistributed
from .embedding import Embedding
from . import utils

__all__ = ["Module", "Parameter", "Sequential", "RNN", "LSTM", "GRU", "LastStep",
           "TimeDistributed", "Embedding", "utils"]
