"""Which engine runs one direction of a quantized LSTM, and on how many threads.

:class:`QuantizedRunner` answers ``run`` / ``step`` as
:class:`cylstm._kernels.lstm_quantized.QuantizedLSTMKernel` does and picks:

- the quantized kernel (quantized.h), its batch rows split over cylstm's
  thread setting (``cylstm.threads``) when the call is large enough, as the
  float32 backend splits its rows; each slice runs the whole time loop. Rows
  are independent (activations are quantized per row), so a slice gives its
  rows what the whole batch gives them (int8 bit for bit; bfloat16's float32
  sums to rounding, their order follows the kernel's blocks of rows).
- at few rows (B <= SPLIT_MAX_ROWS, B = 1 included) the quantized kernel with
  every product's column panels and every cell's units split over the
  threads (quantized.h, cyl_q_lstm_split: the calling thread and persistent C
  workers, two barriers per step), when a step has enough work to pay for
  the barriers (see :func:`split_threads`); not with a projection.
- or, where the quantized kernel is measured slower than float32 (see
  :func:`float32_is_faster`), cylstm's float32 kernels on the dequantized
  weights: the same quantized weights, so the outputs are those of the
  quantized model except that the activations are not rounded (closer to the
  float32 model than the quantized kernel, never further).
"""
from functools import partial

import numpy as np

from ._threads import current_threads, run_parallel, split

_F32 = np.float32

# Fall back to float32 at fewer units than this and at least this many batch
# rows. Measured on one CPU (AMD EPYC Zen 4, 2 cores, avx512_vnni/bf16, 1
# thread, T = 100-300): at 10-32 units and 16-128 rows int8 took 1.04-1.4x and
# bfloat16 0.9-1.25x float32's time (32,300,15,10: 1.21 / 1.04; 128,300,15,10:
# 1.40 / 1.24; 64,100,32,32: 1.38 / 0.90); at 64 units 0.93-0.99x; from 128
# units or at 1-8 rows 0.25-0.8x. With few units the weights (under 40 KiB at
# H = 32) sit in L1/L2 either way, so smaller codes save no memory traffic,
# while the per-row, per-step quantization of h and the 64-column panels
# (padding 4H = 40 to 64) cost a fixed amount per row and step.
FALLBACK_MAX_UNITS = 63
FALLBACK_MIN_ROWS = 16

# Split rows over threads from this many multiply-adds per call (thread
# hand-off costs ~20 us) and with at least this many rows per slice; the
# values of the float32 backend (backends/cpu.py), whose slices run alike.
PARALLEL_MIN_WORK = 4_000_000
PARALLEL_MIN_ROWS = 1

# Split the columns (instead of the rows) at up to this many rows: each
# thread then streams only its share of the weights, where a row split has
# every thread stream all of them.
SPLIT_MAX_ROWS = 8
# ... from this many multiply-adds per step and thread (a step's work: the
# recurrent product, plus the input product when T = 1, whose one step runs
# both). An int8 step runs 60-170 GMAC/s on one Zen 4 core, so a step of 2 x
# 256K takes 4-8 us; a barrier costs 0.2-1 us on idle cores. The float32
# fused step splits from 2 x 128K (lstm_step.pyx); quantized steps are 2-4x
# faster per multiply-add, hence twice that. Derived, not tuned: the machine
# was never quiet while this was written (at load 2 the split took
# 1,1,1024,1024 int8 from 128 to 106 us and 8,1,512,512 bfloat16 from 236 to
# 157 us; at load 5-6 on 2 cores it lost everywhere, as the float32 split
# does: a worker that has claimed a chunk and loses its core holds the
# barrier).
SPLIT_MIN_WORK = 1 << 18


def float32_is_faster(units, batch):
    """Whether float32 kernels on dequantized weights beat the quantized kernel
    for ``batch`` rows of ``units`` units (the rule measured above)."""
    return units <= FALLBACK_MAX_UNITS and batch >= FALLBACK_MIN_ROWS


def split_threads(T, B, F, P, G, has_projection, threads=None):
    """Threads the column split of a call of T steps, B rows uses (1: none):
    within cylstm's thread setting, one per SPLIT_MIN_WORK of a step's work."""
    n = current_threads() if threads is None else threads
    if n < 2 or has_projection or B > SPLIT_MAX_ROWS or T < 1:
        return 1
    work = B * G * (P + (F if T == 1 else 0))
    return max(1, min(n, work // SPLIT_MIN_WORK))


def dequantize(matrix):
    """The float32 values a :class:`QuantizedMatrix` stands for."""
    if matrix.dtype == "int8":
        return matrix.values.astype(_F32) * matrix.scale[None, :]
    return (matrix.values.astype(np.uint32) << 16).view(_F32)


class QuantizedRunner:
    """One direction of a quantized LSTM with its engine choice.

    Parameters
    ----------
    W, U, R : QuantizedMatrix
        Input kernel (F, 4H), recurrent kernel (P, 4H), projection (H, P) or None.
    bias : numpy.ndarray
        (4H,) float32.
    """

    def __init__(self, W, U, R, bias):
        from ._kernels.lstm_quantized import QuantizedLSTMKernel
        self._kernels = [QuantizedLSTMKernel(W, U, R, bias)]   # one per slice, own buffers
        self._parts = (W, U, R)
        self.units = U.shape[1] // 4
        self.bias = self._kernels[0].bias
        self._float = None
        self._workspace = None
        self._plans = {}   # float32 call plans of the fall-back, by call shape
        self._step_cols = {}   # (rows, threads) -> step's column split; 0: not the kernel's

    def _float_weights(self):
        if self._float is None:
            W, U, R = self._parts
            self._float = (dequantize(W), dequantize(U), None if R is None else dequantize(R))
        return self._float

    def _split(self, T, B):
        W, U, R = self._parts
        return split_threads(T, B, W.shape[0], U.shape[0], U.shape[1], R is not None)

    def _slices(self, T, B, threads=None):
        W, U, R = self._parts
        work = T * B * U.shape[1] * (W.shape[0] + U.shape[0])
        n = min(current_threads() if threads is None else threads, B // PARALLEL_MIN_ROWS)
        if n <= 1 or work < PARALLEL_MIN_WORK:
            return [(0, B)]
        return split(B, n)

    def run(self, x, h0, c0, mask=None, return_sequences=True):
        """(seq (T, B, P) or None, h, c, last output) over time-major x (T, B, F)."""
        x = np.asarray(x)
        if x.ndim == 3 and float32_is_faster(self.units, x.shape[1]):
            return self._run_float(x, h0, c0, mask, return_sequences)
        if x.ndim != 3:
            return self._kernels[0].run(x, h0, c0, mask, return_sequences)
        T, B = x.shape[:2]
        cols = self._split(T, B)
        if cols > 1 or B < 2:
            return self._kernels[0].run(x, h0, c0, mask, return_sequences, -1, cols)
        slices = self._slices(T, B)
        if len(slices) == 1:
            return self._kernels[0].run(x, h0, c0, mask, return_sequences)
        while len(self._kernels) < len(slices):
            k = self._kernels[0]
            self._kernels.append(type(k)(k.W, k.U, k.R, k.bias))
        h0 = np.asarray(h0, _F32)
        c0 = np.asarray(c0, _F32)
        if h0.shape[0] != B or c0.shape[0] != B:   # let the kernel name the problem
            return self._kernels[0].run(x, h0, c0, mask, return_sequences)
        out = [None] * len(slices)

        def part(i, b0, b1):
            out[i] = self._kernels[i].run(x[:, b0:b1], h0[b0:b1], c0[b0:b1],
                                          None if mask is None else np.asarray(mask)[:, b0:b1],
                                          return_sequences)

        run_parallel([partial(part, i, b0, b1) for i, (b0, b1) in enumerate(slices)])
        seq = np.concatenate([o[0] for o in out], axis=1) if return_sequences else None
        return (seq,) + tuple(np.concatenate([o[k] for o in out]) for k in (1, 2, 3))

    def _run_float(self, x, h0, c0, mask, return_sequences):
        from .backends import backend_named
        from .backends.cpu import Workspace
        W, U, R = self._float_weights()
        if self._workspace is None:
            self._workspace = Workspace()
        x = np.asarray(x, _F32)
        T, B, F = x.shape
        H, P = self.units, U.shape[0]
        if F != W.shape[0]:
            raise ValueError(f"`x` must be 3-D (T, B, {W.shape[0]}) with {W.shape[0]} "
                             f"features, got shape {x.shape}.")
        h0 = np.asarray(h0, _F32)
        c0 = np.asarray(c0, _F32)
        if h0.shape != (B, P) or c0.shape != (B, H):
            raise ValueError(f"`h0` must have shape {(B, P)} and `c0` {(B, H)}, got "
                             f"{h0.shape} and {c0.shape}.")
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (T, B):
                raise ValueError(f"`mask` must have shape ({T}, {B}), got {mask.shape}.")
        # A time-major view of a batch-first array (what the layers pass) goes
        # in batch-first: the float32 kernels read either layout, and a copy
        # of the input and of the output would cost up to 30 % at these shapes.
        batch_first = not x.flags.c_contiguous and x.transpose(1, 0, 2).flags.c_contiguous
        if batch_first:
            x = x.transpose(1, 0, 2)
            mask = None if mask is None else mask.T
        backend = backend_named("cpu")
        got = None
        if mask is None:
            got = self._planned(backend, x, not batch_first, return_sequences, h0, c0)
        if got is not None:
            seq, last, h, c = got
        else:
            seq, last, h, c, _ = backend._compiled_forward(
                x, W, U, self.bias, h0, c0, projection=R, mask=mask,
                time_major=not batch_first, return_sequences=return_sequences,
                workspace=self._workspace)
        if batch_first and seq is not None:
            seq = seq.transpose(1, 0, 2)
        return seq, h, c, last

    def _planned(self, backend, x, time_major, return_sequences, h0, c0):
        """The unmasked call through the float32 backend's call plan for this
        shape (as nn.LSTM's float32 calls run; made once per shape, kept for a
        few shapes), or None where no plan applies or another thread holds it."""
        from . import activations
        from .backends.cpu import Workspace
        key = (x.shape, time_major, return_sequences)
        if key not in self._plans:
            if len(self._plans) >= 8:
                self._plans.clear()
            W, U, R = self._float_weights()
            self._plans[key] = backend.forward_plan(
                W, U, self.bias, R, activations.tanh, activations.sigmoid, x.shape,
                time_major=time_major, return_sequences=return_sequences,
                workspace=Workspace())
        plan = self._plans[key]
        if plan is None or not x.flags.c_contiguous:
            return None
        h0 = np.ascontiguousarray(h0)
        c0 = np.ascontiguousarray(c0)
        return plan.run(x, h0, c0)

    def step(self, x, h0, c0):
        """(h, c) of one step, or None when ``run`` must take it (arguments not
        exactly C-contiguous float32 of the right shapes, or a call that falls
        back to float32 or splits its rows over threads)."""
        cols = 1
        if type(x) is np.ndarray and x.ndim == 2:
            # The decision depends on the rows and the thread setting only:
            # made once per pair (a one-step call is a few microseconds).
            key = (x.shape[0], current_threads())
            cols = self._step_cols.get(key)
            if cols is None:
                cols = self._step_decision(*key)
                if len(self._step_cols) >= 64:
                    self._step_cols.clear()
                self._step_cols[key] = cols
            if cols == 0:
                return None
        return self._kernels[0].step(x, h0, c0, cols)

    def _step_decision(self, B, threads):
        """The column split of a one-step call of B rows at ``threads`` threads,
        or 0 where ``run`` takes it (float32 fall-back, or a row split)."""
        if float32_is_faster(self.units, B):
            return 0
        W, U, R = self._parts
        cols = split_threads(1, B, W.shape[0], U.shape[0], U.shape[1], R is not None, threads)
        if cols == 1 and len(self._slices(1, B, threads)) > 1:
            return 0
        return cols
