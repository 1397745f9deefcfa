"""Keras-style layers (``tensorflow.keras.layers`` with ``cylstm`` in front)."""
from .base import Layer, SymbolicTensor
from .lstm import LSTM, LSTMCell

__all__ = ["Layer", "SymbolicTensor", "LSTM", "LSTMCell"]
