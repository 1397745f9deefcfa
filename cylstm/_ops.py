"""The CPU backend's LSTM as plain functions with positional arrays: a thin
compatibility layer over ``cylstm.backends.cpu`` for the kernel tests and the
fixture scripts that call it this way. Library code asks
``cylstm.backends.get_backend`` instead.

``lstm_forward`` returns ``(sequence or None, last_output, h, c, cache or
None)`` and ``lstm_backward`` the gradient dict, as ``CpuBackend``'s
``lstm_forward``/``lstm_backward`` do (see there and ``backends/base.py``).
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

from . import activations as _activations
from .backends import LSTMGrads, LSTMProblem, backend_named
from .backends.cpu import ForwardCache, Workspace, _fused_gates, pack_recurrent

__all__ = ["lstm_forward", "lstm_backward", "lstm_forward_ext", "row_slices", "Workspace",
           "ForwardCache", "pack_recurrent", "cpu", "_fused_gates"]


def cpu() -> Any:
    """The CPU backend these functions run on."""
    return backend_named("cpu")


def lstm_forward(x: Any, kernel: Any, recurrent_kernel: Any, bias: Any, h0: Any, c0: Any, *,
                 projection: Any = None, mask: Any = None, recurrent_mask: Any = None,
                 input_mask: Any = None, go_backwards: bool = False,
                 activation: Any = _activations.tanh,
                 recurrent_activation: Any = _activations.sigmoid, time_major: bool = False,
                 return_sequences: bool = True, output_order: str = "processing",
                 training: bool = False, workspace: Any = None) -> Tuple[Any, ...]:
    """``CpuBackend.lstm_forward`` on these arguments, flattened to
    ``(sequence, last_output, h, c, cache)``."""
    (seq, last, h, c), cache = cpu().lstm_forward(LSTMProblem(
        x, kernel, recurrent_kernel, bias, h0, c0, projection=projection, mask=mask,
        recurrent_mask=recurrent_mask, input_mask=input_mask, go_backwards=go_backwards,
        activation=activation, recurrent_activation=recurrent_activation,
        time_major=time_major, return_sequences=return_sequences, output_order=output_order,
        training=training, workspace=workspace))
    return seq, last, h, c, cache


def lstm_backward(cache: Any, d_seq: Any = None, d_last: Any = None, d_h: Any = None,
                  d_c: Any = None, need_dx: bool = True) -> Dict[str, Any]:
    """``CpuBackend.lstm_backward`` on these gradients."""
    return cpu().lstm_backward(cache, LSTMGrads(d_seq, d_last, d_h, d_c, need_dx))


def lstm_forward_ext(*args: Any, **kwargs: Any) -> Tuple[Any, ...]:
    """``CpuBackend.lstm_forward_ext`` (ONNX's full cell, inference only)."""
    return cpu().lstm_forward_ext(*args, **kwargs)


def row_slices(B: int, work: int) -> Any:
    """``CpuBackend.row_slices``: the batch rows' split over threads."""
    return cpu().row_slices(B, work)


def _use_packed(matrix: Any, slices: Any) -> bool:
    return cpu()._use_packed(matrix, slices)
