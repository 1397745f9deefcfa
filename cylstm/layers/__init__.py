"""Keras-style layers (``tensorflow.keras.layers`` with ``cylstm`` in front)."""
from .base import Layer, SymbolicTensor
from .lstm import LSTM, LSTMCell
from .core import Dense, Dropout, Embedding, Masking
from .bidirectional import Bidirectional

__all__ = ["Layer", "SymbolicTensor", "LSTM", "LSTMCell", "Dense", "Embedding", "Masking",
           "Dropout", "Bidirectional"]
