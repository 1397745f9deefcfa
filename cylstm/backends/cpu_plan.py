"""A cached inference call of the CPU backend: ``ForwardPlan``.

Why it exists: a small layer call spent 40-50 us in Python around a kernel
of a few microseconds (argument and size checks, the layout and threading
decisions, workspace look-ups, thread-limit bookkeeping, the fused-type
dispatch of the kernel). A plan makes every decision that depends only on
the call's shape and options once -- the row slices, the chunk length, the
workspace buffers, the kernel specialisation -- so a repeated call does the
per-call work alone: lease the workspace, pin BLAS to one thread, allocate
the outputs, run the kernel.

What a plan does not cache: anything derived from weight *values*. The
weights are held by reference and read in place on every call (optimizers
and in-place edits change them; the packed copy of U is made per call, as
in ``CpuBackend._compiled_forward``). The layers that keep a plan check that
their weight arrays are still the ones the plan holds, and that nothing else
it depends on (options, thread count, backend in force) has changed.

Inference only: no masks, no dropout masks, built-in activations, float32 or
float64. Everything else takes ``CpuBackend.lstm_forward``.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Optional, Tuple

import numpy as np

from .._threads import blas_limits, pin_one_blas_thread, restore_blas_threads, run_parallel
from .._validation import check_sequence_sizes

__all__ = ["ForwardPlan"]


class ForwardPlan:
    """One inference call shape of one LSTM on the compiled kernels.

    Parameters
    ----------
    backend : CpuBackend
        Supplies the thresholds (row slices, packed recurrent kernel, chunk).
    kernel, recurrent_kernel : numpy.ndarray
        (I, 4H) and (P, 4H), C-contiguous, used in place.
    bias : numpy.ndarray or None
        (4H,), used in place; None for zeros.
    projection : numpy.ndarray or None
        (H, P).
    codes : (int, int)
        The kernel codes of the activation and the recurrent activation.
    x_shape : tuple of int
        (B, T, I), or (T, B, I) with ``time_major``; B >= 1.
    time_major, return_sequences, go_backwards : bool
    output_order : {"processing", "time"}
    workspace : Workspace
        The layer's: its buffers are taken now and leased on every call.
    fused : bool
        Whether the fused float32 sigmoid/tanh gate loop applies.
    return_last, return_states : bool, default True
        False: the caller drops the last output / the final states, which
        then live in the plan (see ``run``).
    """

    __slots__ = ("kernel", "recurrent_kernel", "bias", "projection", "act", "rec",
                 "x_shape", "state_shapes", "seq_shape", "dtype", "time_major",
                 "processing_order", "go_backwards", "slices", "chunk", "fused", "packed",
                 "buffers", "lock", "fn", "pack", "bias_parts", "scratch", "last", "limits",
                 "fused_step", "pack_fused", "fused_fn", "few_rows", "few_rows_fn",
                 "few_rows_parts", "return_sequences", "fused_panels")

    def __init__(self, backend: Any, kernel: Any, recurrent_kernel: Any, bias: Any,
                 projection: Any, codes: Tuple[int, int], x_shape: Tuple[int, int, int],
                 time_major: bool, return_sequences: bool, go_backwards: bool,
                 output_order: str, workspace: Any, fused: bool, return_last: bool = True,
                 return_states: bool = True) -> None:
        from .._kernels import lstm_forward as _kernels   # loads scipy.linalg: not at import
        dtype = kernel.dtype
        T, B, I = x_shape if time_major else (x_shape[1], x_shape[0], x_shape[2])
        P, G = recurrent_kernel.shape
        H = G // 4
        check_sequence_sizes(T, B, I, H, P)
        self.kernel = kernel
        self.recurrent_kernel = recurrent_kernel
        self.bias = np.zeros(G, dtype) if bias is None else bias
        self.bias_parts = None
        self.projection = projection
        self.act, self.rec = codes
        self.dtype = dtype
        self.x_shape = tuple(x_shape)
        self.state_shapes = ((B, P), (B, H))
        self.seq_shape = None
        if return_sequences:
            self.seq_shape = (T, B, P) if time_major else (B, T, P)
        # Outputs the caller does not return live in the plan, used under the lease.
        self.last = None if return_last else np.empty((B, P), dtype)
        self.scratch = None if return_states else (np.empty((B, P), dtype),
                                                   np.empty((B, H), dtype))
        self.time_major = bool(time_major)
        self.processing_order = output_order == "processing"
        self.go_backwards = bool(go_backwards)
        self.slices = backend.row_slices(B, T * B * G * (I + P))
        self.chunk = int(max(1, min(T, backend.CHUNK_ELEMENTS // max(B * G, 1))))
        self.fused = bool(fused)
        self.packed = backend._use_packed(recurrent_kernel, self.slices)
        self.pack = _kernels.pack_recurrent
        # The fused step kernel where _compiled_forward would take it; U is
        # packed per call (its values may change between calls).
        self.fused_step = bool(fused and projection is None
                               and backend._fused_packed(recurrent_kernel, self.slices) is not None)
        self.pack_fused = _kernels.pack_fused
        self.fused_panels = backend.FUSED_STEP_PANEL_UNITS
        self.fused_fn = _kernels.lstm_forward_fused
        # A few rows run the fused step's time loop on the C worker threads
        # (lstm_step.fused_sequence), as in _compiled_forward.
        from .._kernels import lstm_step as _step
        self.few_rows = bool(projection is None and backend._few_row_sequence(
            B, H, P, codes, dtype, go_backwards))
        self.few_rows_fn = _step.fused_sequence
        self.few_rows_parts = _step.sequence_parts
        self.return_sequences = bool(return_sequences)
        self.fn = _kernels.lstm_forward.__signatures__[
            "float" if dtype == np.float32 else "double"]
        # The buffers _compiled_forward would take from the workspace, taken
        # once; they are used only while its lock is held, as there.
        self.lock = workspace._lock
        self.limits = blas_limits()
        ws = workspace
        chunk = self.chunk
        self.buffers = [
            (ws.get(f"gates{i}", chunk * (b1 - b0) * G, dtype),
             ws.get(f"x{i}", chunk * (b1 - b0) * I, dtype), ws.get(f"act{i}", 1, dtype),
             ws.get(f"h{i}", (b1 - b0) * P, dtype), ws.get(f"m{i}", (b1 - b0) * H, dtype),
             ws.get(f"sel{i}", (b1 - b0) * G, np.float32) if self.fused else None,
             ws.get(f"h2_{i}", (b1 - b0) * H, dtype) if self.fused_step else None)
            for i, (b0, b1) in enumerate(self.slices)]

    def sum_biases(self, bias_ih: Any, bias_hh: Any) -> None:
        """Make the kernel's bias ``bias_ih + bias_hh`` (torch's two biases), added
        again on every call under the workspace lease: in-place edits of either
        stay exact, and concurrent calls never write a bias another one reads."""
        self.bias = np.empty_like(bias_ih)
        self.bias_parts = (bias_ih, bias_hh)

    def run(self, x: Any, h0: Optional[Any], c0: Optional[Any]
            ) -> Optional[Tuple[Any, Any, Any, Any]]:
        """``(sequence or None, last_output, h, c)`` for ``x`` of the plan's shape
        and dtype (C-contiguous) and states h0 (B, P), c0 (B, H) of its dtype, or
        None for zeros; the inputs untouched. New arrays, except those made
        with ``return_last`` / ``return_states`` False: the plan's scratch,
        overwritten by the next call. None when another
        thread holds the workspace (the caller then takes the general path)."""
        if not self.lock.acquire(False):
            return None
        try:
            dtype = self.dtype
            hs, cs = self.state_shapes
            if self.few_rows:
                T, B, I = (self.x_shape if self.time_major
                           else (self.x_shape[1], self.x_shape[0], self.x_shape[2]))
                # torch's two biases: the kernel adds the second itself
                bias, bias2 = self.bias_parts or (self.bias, None)
                seq, last, h, c = self.few_rows_fn(
                    x, self.time_major, self.kernel, self.recurrent_kernel, bias,
                    np.zeros(hs, dtype) if h0 is None else h0,
                    np.zeros(cs, dtype) if c0 is None else c0,
                    self.return_sequences, self.few_rows_parts(B, I, cs[1]), bias2)
                return seq, last, h, c
            if self.bias_parts is not None:
                np.add(self.bias_parts[0], self.bias_parts[1], out=self.bias)
            if self.scratch is None:
                h = np.zeros(hs, dtype) if h0 is None else np.array(h0, dtype, order="C")
                c = np.zeros(cs, dtype) if c0 is None else np.array(c0, dtype, order="C")
            else:
                h, c = self.scratch
                h.fill(0) if h0 is None else np.copyto(h, h0)
                c.fill(0) if c0 is None else np.copyto(c, c0)
            last = self.last
            if last is None:
                last = np.zeros(hs, dtype)
            else:
                last.fill(0)   # the kernel's contract: zeros on entry
            seq = None if self.seq_shape is None else np.empty(self.seq_shape, dtype)
            U = self.recurrent_kernel
            changed = None
            for limit in self.limits:   # one direct call when BLAS is on one thread
                if limit.get() != 1:
                    changed = pin_one_blas_thread()
                    break
            try:
                tm = self.time_major
                # Packed per call; None (or another panel width) when the
                # instruction set in force has changed since the plan was made.
                u_fused = self.pack_fused(U) if self.fused_step else None
                if u_fused is not None and u_fused.shape[1] // 4 in self.fused_panels:
                    # W packed once for all row slices (the kernel would pack it per slice)
                    w_fused = self.pack_fused(self.kernel)
                    run_parallel([partial(
                        self.fused_fn, x, tm, self.kernel, u_fused, u_fused.shape[1] // 4,
                        self.bias, None, None, self.go_backwards, h, c, last, seq, tm,
                        self.processing_order, None, None, None, None, gbuf, self.chunk, xbuf,
                        hbuf, h2, b0, b1, w_fused)
                        for (b0, b1), (gbuf, xbuf, _, hbuf, _, _, h2)
                        in zip(self.slices, self.buffers)])
                    return seq, last, h, c
                u_packed = self.pack(U) if self.packed else None
                if len(self.slices) == 1:
                    gbuf, xbuf, abuf, hbuf, mbuf, sel, _ = self.buffers[0]
                    self.fn(x, tm, self.kernel, U, u_packed, self.bias, self.projection, None,
                            None, None, None, None, self.go_backwards, self.act, self.rec, h, c,
                            last, seq, tm, self.processing_order, None, None, None, None, None,
                            gbuf, self.chunk, xbuf, abuf, hbuf, mbuf, sel, 0, hs[0])
                else:
                    run_parallel([partial(
                        self.fn, x, tm, self.kernel, U, u_packed, self.bias, self.projection,
                        None, None, None, None, None, self.go_backwards, self.act, self.rec, h,
                        c, last, seq, tm, self.processing_order, None, None, None, None, None,
                        gbuf, self.chunk, xbuf, abuf, hbuf, mbuf, sel, b0, b1)
                        for (b0, b1), (gbuf, xbuf, abuf, hbuf, mbuf, sel, _)
                        in zip(self.slices, self.buffers)])
            finally:
                if changed:
                    restore_blas_threads(changed)
        finally:
            self.lock.release()
        return seq, last, h, c


class StepPlan:
    """A ``ForwardPlan`` for sequences of one timestep: the streaming kernel
    (``StepKernel``), whose per-call work is a few C-level checks. Same
    ``run`` and ``sum_biases`` as ``ForwardPlan``."""

    __slots__ = ("stepper", "bias", "bias_parts", "zeros", "lock", "dtype", "state_shapes",
                 "time_major", "return_sequences", "slices", "torch_states")

    def __init__(self, backend: Any, kernel: Any, recurrent_kernel: Any, bias: Any,
                 projection: Any, activation: Any, recurrent_activation: Any,
                 x_shape: Tuple[int, int, int], time_major: bool, return_sequences: bool,
                 workspace: Any, bias_parts: Any = None) -> None:
        dtype = kernel.dtype
        B = x_shape[1] if time_major else x_shape[0]
        P, G = recurrent_kernel.shape
        self.bias_parts = None
        self.bias = np.zeros(G, dtype) if bias is None else bias
        stepper = None
        if bias_parts:
            # The compiled kernel adds the second part itself, reading both in
            # place (no per-call sum: 0.5-1.2 us of a 1-step nn.LSTM call).
            stepper = backend.stepper(kernel, recurrent_kernel, bias_parts[0], projection,
                                      activation, recurrent_activation, B)
            if hasattr(stepper, "set_second_bias"):
                stepper.set_second_bias(bias_parts[1])
                self.bias = bias_parts[0]
            else:
                # Other steppers read one bias by reference: a buffer the two
                # are added into on every call (under the workspace lease).
                self.bias = np.zeros(G, dtype)
                self.bias_parts = bias_parts
                stepper = None
        if stepper is None:
            stepper = backend.stepper(kernel, recurrent_kernel, self.bias, projection,
                                      activation, recurrent_activation, B)
        self.stepper = stepper
        # torch's (output, (h_n, c_n)) straight from the compiled kernel.
        self.torch_states = hasattr(stepper, "set_second_bias") and bool(return_sequences)
        self.dtype = dtype
        self.state_shapes = ((B, P), (B, G // 4))
        self.zeros = (np.zeros((B, P), dtype), np.zeros((B, G // 4), dtype))  # never written
        self.lock = workspace._lock
        self.time_major = bool(time_major)
        self.return_sequences = bool(return_sequences)
        self.slices = [(0, B)]

    def run(self, x: Any, h0: Optional[Any], c0: Optional[Any]
            ) -> Optional[Tuple[Any, Any, Any, Any]]:
        """As ``ForwardPlan.run``."""
        h0 = self.zeros[0] if h0 is None else np.ascontiguousarray(h0)
        c0 = self.zeros[1] if c0 is None else np.ascontiguousarray(c0)
        if self.bias_parts is None:
            # Nothing of the workspace's is written: the stepper leases its own.
            res = self.stepper.sequence_of_one(x, h0, c0, self.time_major,
                                               self.return_sequences)
        else:
            if not self.lock.acquire(False):
                return None
            try:
                np.add(self.bias_parts[0], self.bias_parts[1], out=self.bias)
                res = self.stepper.sequence_of_one(x, h0, c0, self.time_major,
                                                   self.return_sequences)
            finally:
                self.lock.release()
        if res is None:
            return None
        out, h, c = res
        if not self.return_sequences:
            return None, h, h, c
        return out, h, h.copy(), c     # the output and the state: separate arrays

    def run_torch(self, x: Any, h0: Optional[Any], c0: Optional[Any], states_3d: bool = False
                  ) -> Optional[Tuple[Any, Any, Any]]:
        """``(output, h_n, c_n)`` of a batched ``nn.LSTM`` call, h_n (1, B, P) and
        c_n (1, B, H) arrays of their own; h0 (B, P), c0 (B, H) of the plan's
        dtype ((1, B, P), (1, B, H) with ``states_3d``: torch's hx as given),
        or None for zeros. None when it does not apply (see ``torch_states``;
        an array of another shape or dtype, or not C-contiguous)."""
        if not self.torch_states:
            return None
        if h0 is None:
            h0, c0, states_3d = self.zeros[0], self.zeros[1], False
        return self.stepper.sequence_of_one(x, h0, c0, self.time_major, True, True, states_3d)
