"""Loading and converting weights trained elsewhere (PyTorch, ONNX, Keras)."""
from .convert import keras_to_torch_weights, torch_to_keras_weights
from .keras_files import from_keras
from .onnx_export import to_onnx
from .onnx_graph import OnnxModel
from .onnx_lstm import OnnxLSTM, from_onnx
from . import onnx_graph  # noqa: F401  (sets from_onnx's whole-graph importer)

__all__ = ["from_keras", "from_onnx", "to_onnx", "OnnxLSTM", "OnnxModel", "keras_to_torch_weights",
           "torch_to_keras_weights"]
