"""cylstm: a fast LSTM for Python, with Keras- and PyTorch-style APIs.

    import cylstm
    lstm = cylstm.layers.LSTM(4, return_sequences=True, return_state=True)
    whole_seq_output, final_memory_state, final_carry_state = lstm(inputs)
"""
from ._version import __version__

from . import activations, constraints, initializers, layers, regularizers
from ._threads import blas_info, get_num_threads, set_num_threads, threads
from . import nn
from .interop.onnx_lstm import from_onnx
from .interop.onnx_export import to_onnx
from .interop.keras_files import from_keras
from .layers import LSTM, Bidirectional, LSTMCell
from . import models, optimizers, losses, metrics, callbacks, preprocessing, utils
from .models import Sequential

__all__ = [
    "__version__", "LSTM", "LSTMCell", "Bidirectional", "layers", "activations", "initializers",
    "regularizers", "constraints", "set_num_threads", "get_num_threads", "threads",
    "blas_info", "nn", "from_onnx", "to_onnx", "models", "optimizers", "losses", "metrics",
    "callbacks", "preprocessing", "utils", "Sequential", "from_keras", "quantize",
    "load_quantized",
]


def __getattr__(name):
    # cylstm.quantize / load_quantized load their module on first use.
    if name in ("quantize", "load_quantized"):
        from . import quantization
        return getattr(quantization, name)
    raise AttributeError(f"module 'cylstm' has no attribute {name!r}")
