"""The CPU backend: the compiled Cython kernels over scipy's BLAS, on NumPy arrays.

``CpuBackend`` overrides the reference methods of ``Backend`` with the
compiled paths of ``cylstm/_ops.py`` (layouts, threading policy and
thresholds, workspaces, the fused float32 gate loop) and falls back to the
reference for what has no compiled path: a Python-callable activation runs
the reference formulas, whole-array per step, with one BLAS thread per call
as the compiled path uses.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from .. import _ops
from .. import activations as _activations
from .._threads import one_blas_thread
from .base import Backend, LSTMGrads, LSTMProblem, ReferenceCache

__all__ = ["CpuBackend"]


class CpuBackend(Backend):
    """Compiled kernels on NumPy arrays (the default backend).

    The thresholds that decide how a call runs are attributes of
    ``cylstm._ops`` (chosen from benchmark runs; see there):
    ``CHUNK_ELEMENTS``, ``PARALLEL_MIN_WORK``, ``PARALLEL_MIN_ROWS``,
    ``RECURRENT_KERNEL_ROWS``, ``RECURRENT_KERNEL_FEW_ROWS``,
    ``RECURRENT_KERNEL_MIN_SIZE``.
    """

    Workspace = _ops.Workspace

    def __init__(self) -> None:
        super().__init__(np, name="cpu")

    @staticmethod
    def compiled(problem: LSTMProblem) -> bool:
        """Whether the compiled kernels run this problem (built-in activations)."""
        return (_activations.kernel_code(problem.activation) is not None
                and _activations.kernel_code(problem.recurrent_activation) is not None)

    def workspace(self) -> Any:
        """Scratch buffers a layer keeps between calls."""
        return _ops.Workspace()

    def lstm_forward(self, problem: LSTMProblem) -> Tuple[Tuple[Any, Any, Any, Any], Any]:
        p = problem
        if not self.compiled(p):
            with one_blas_thread(all_blas=True):
                (seq, last, h, c), cache = super().lstm_forward(p)
            dtype = p.x.dtype
            seq = None if seq is None else np.ascontiguousarray(seq, dtype)
            return (seq, last.astype(dtype, copy=False), h.astype(dtype, copy=False),
                    c.astype(dtype, copy=False)), cache
        seq, last, h, c, cache = _ops.lstm_forward(
            p.x, p.kernel, p.recurrent_kernel, p.bias, p.h0, p.c0, projection=p.projection,
            mask=p.mask, recurrent_mask=p.recurrent_mask, input_mask=p.input_mask,
            go_backwards=p.go_backwards, activation=p.activation,
            recurrent_activation=p.recurrent_activation, time_major=p.time_major,
            return_sequences=p.return_sequences, output_order=p.output_order,
            training=p.training, workspace=p.workspace)
        return (seq, last, h, c), cache

    def lstm_backward(self, cache: Any, grads: LSTMGrads) -> Dict[str, Any]:
        if isinstance(cache, ReferenceCache):
            with one_blas_thread(all_blas=True):
                out = super().lstm_backward(cache, grads)
            if out["dx"] is not None:
                out["dx"] = np.ascontiguousarray(out["dx"], cache.dtype)
            return out
        return _ops.lstm_backward(cache, grads.d_seq, grads.d_last, grads.d_h, grads.d_c,
                                  need_dx=grads.need_dx)

    def stepper(self, kernel: Any, recurrent_kernel: Any, bias: Any, projection: Any,
                activation: Any, recurrent_activation: Any, batch: int) -> Any:
        act = _activations.kernel_code(activation)
        rec = _activations.kernel_code(recurrent_activation)
        if act is None or rec is None:
            return super().stepper(kernel, recurrent_kernel, bias, projection, activation,
                                   recurrent_activation, batch)
        from .._kernels.lstm_step import StepKernel  # loads scipy.linalg: not at import
        if bias is None:
            bias = np.zeros(kernel.shape[1], kernel.dtype)
        return StepKernel(kernel, recurrent_kernel, bias, projection, act, rec, batch,
                          _ops._fused_gates(np.dtype(kernel.dtype), act, rec))
