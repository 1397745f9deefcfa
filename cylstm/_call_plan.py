"""Call plans of ``cylstm.layers.LSTM`` and ``cylstm.nn.LSTM``: a repeated
inference call of the same shape goes straight to the kernel.

A layer keeps the plan of its last planned call. The plan records what the
call's path depended on -- the layer's options, its weight arrays (by
identity: their values are read in place by the kernel, so set_weights,
load_state_dict, attribute assignment and optimizer steps need nothing), the
thread count, the backend in force -- and on the next call re-checks only
that record and the arguments that can change (the input's type, shape and
dtype, the states given). Anything else, or any mismatch, takes the general
path, which validates everything, raises the usual errors, and makes a new
plan where one applies. The kernel-side decisions live in
``backends/cpu_plan.py`` (``ForwardPlan``).

Measured with benchmarks/fixed_cost.py (the fixed cost of a call: a 2-step
call at B=1, I=H=8 minus the kernel alone): 39-51 us before, 4-6 us after for
both APIs on the project's 2-vCPU machine (benchmarks/README.md has the table).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .backends import _FORCED
from ._threads import current_threads

__all__ = ["LayerCallPlan", "ModuleCallPlan"]


def _busy(workspace):
    """Whether another thread holds the workspace (a plan made now could not
    run: that call takes the general path, with private buffers)."""
    lock = getattr(workspace, "_lock", None)
    return lock is None or lock.locked()


def _layer_key(layer):
    """Everything besides the arguments a ``layers.LSTM`` call's path depends
    on. The weights enter by ``id``: the plan holds them, so no other array
    can take their ids while it lives."""
    d = layer.__dict__
    cell = d["cell"]
    c = cell.__dict__
    p = cell._params
    return (d["return_sequences"], d["return_state"], d["go_backwards"],
            d["stateful"], d["time_major"], d["activity_regularizer"],
            d["use_cudnn"], d["dtype"], d["built"], d.get("_backend_name"),
            c["activation"], c["recurrent_activation"], c["use_bias"],
            c["dtype"], c["dropout"], c["recurrent_dropout"],
            current_threads(), _FORCED.get(), id(p["kernel"]),
            id(p["recurrent_kernel"]), id(p.get("bias")))


def _cell_weights(cell):
    p = cell._params
    return (p.get("kernel"), p.get("recurrent_kernel"), p.get("bias"))


class LayerCallPlan:
    """The plan of one ``layers.LSTM`` call shape (no mask, not stateful, no
    activity regularizer, no dropout acting)."""

    # weights: held so that their ids in the key stay theirs.
    __slots__ = ("key", "weights", "forward", "x_shape", "dtype", "state_shape",
                 "return_sequences", "return_state", "dropping")

    def __init__(self, layer: Any, x_shape: Any, forward: Any) -> None:
        self.key = _layer_key(layer)
        self.weights = _cell_weights(layer.cell)
        self.forward = forward
        self.x_shape = tuple(x_shape)
        self.dtype = forward.dtype
        self.state_shape = forward.state_shapes[0]
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.dropping = bool(layer.dropout or layer.recurrent_dropout)

    @classmethod
    def make(cls, layer: Any, backend: Any, x: Any) -> Optional["LayerCallPlan"]:
        """The plan for calls like this one (``x`` as ``_prepare`` returned it):
        the layer's plan when it already is that one, else a new one; None
        where plans do not apply."""
        plan = layer.__dict__.get("_call_plan")
        if (plan is not None and plan.x_shape == x.shape and plan.dtype == x.dtype
                and plan.key == _layer_key(layer)):
            return plan     # it missed for another reason (a list input, a busy lease)
        make = getattr(backend, "forward_plan", None)
        if (make is None or layer.stateful or layer.activity_regularizer is not None
                or layer.__dict__.get("_backend_name") not in (None, "cpu")
                or _busy(layer._workspace)):
            return None
        cell = layer.cell
        kernel, recurrent, bias = _cell_weights(cell)
        forward = make(kernel, recurrent, bias if cell.use_bias else None, None,
                       cell.activation, cell.recurrent_activation, x.shape,
                       time_major=layer.time_major, return_sequences=layer.return_sequences,
                       go_backwards=layer.go_backwards, workspace=layer._workspace,
                       return_last=not layer.return_sequences,
                       return_states=layer.return_state)
        return None if forward is None else cls(layer, x.shape, forward)

    def __call__(self, layer: Any, inputs: Any, initial_state: Any, training: Any) -> Any:
        """The call's output, or None when the plan does not apply to it."""
        if (type(inputs) is not np.ndarray or inputs.shape != self.x_shape
                or (training and self.dropping) or self.key != _layer_key(layer)):
            return None
        if inputs.dtype != self.dtype:
            if inputs.dtype.kind not in "biuf":
                return None       # the general path raises the error
            inputs = inputs.astype(self.dtype)   # any real dtype is cast, as there
        h0 = c0 = None
        if initial_state is not None:
            if type(initial_state) not in (list, tuple) or len(initial_state) != 2:
                return None
            h0, c0 = initial_state
            if not (type(h0) is np.ndarray and type(c0) is np.ndarray
                    and h0.shape == self.state_shape and c0.shape == self.state_shape
                    and h0.dtype == self.dtype and c0.dtype == self.dtype):
                return None
        return self.run(np.ascontiguousarray(inputs), h0, c0)

    def run(self, x: Any, h0: Any, c0: Any) -> Any:
        """The output for checked arguments, or None (workspace busy)."""
        res = self.forward.run(x, h0, c0)
        if res is None:
            return None
        seq, last, h, c = res
        out = seq if self.return_sequences else last
        return [out, h, c] if self.return_state else out


def _module_key(module):
    """As ``_layer_key`` for an ``nn.LSTM`` of one layer (its training mode and
    dropout act only between layers; the slot and its arrays stand for the
    sizes)."""
    d = module.__dict__
    slot = d["_slots"][0][0]
    return (type(module), d["batch_first"], d["num_layers"], d["bidirectional"],
            d["dtype"], d["_reverse_only"], d["_activation"],
            d["_recurrent_activation"], d.get("_backend_name"), current_threads(),
            _FORCED.get(), id(slot), id(slot.kernel), id(slot.recurrent), id(slot.projection),
            id(slot.bias_ih), id(slot.bias_hh))


def _slot_weights(module):
    slot = module._slots[0][0]
    return (slot, slot.kernel, slot.recurrent, slot.projection, slot.bias_ih, slot.bias_hh)


class ModuleCallPlan:
    """The plan of one ``nn.LSTM`` call shape (one layer, one direction, the
    common cell)."""

    __slots__ = ("key", "weights", "forward", "x_shape", "dtype", "h_shape", "c_shape",
                 "batched", "torch_step")

    def __init__(self, module: Any, x_shape: Any, forward: Any) -> None:
        self.key = _module_key(module)
        self.weights = _slot_weights(module)
        self.forward = forward
        self.x_shape = tuple(x_shape)
        self.dtype = forward.dtype
        self.batched = len(x_shape) == 3
        # One timestep, batched, from zero states: the kernel makes torch's
        # three arrays itself (StepPlan.run_torch).
        self.torch_step = (forward.run_torch if self.batched
                           and getattr(forward, "torch_states", False) else None)
        hs, cs = forward.state_shapes
        # hx as forward takes it: (1, B, P) / (1, B, H), unbatched (1, P) / (1, H).
        if self.batched:
            self.h_shape, self.c_shape = (1,) + hs, (1,) + cs
        else:
            self.h_shape, self.c_shape = (1, hs[1]), (1, cs[1])

    @classmethod
    def make(cls, module: Any, backend: Any, input_shape: Any, x: Any, time_major: bool
             ) -> Optional["ModuleCallPlan"]:
        """The plan for calls with inputs of ``input_shape`` (``x``: the kernel's
        view of one, as ``_prepare`` made it): the module's plan when it already
        is that one, else a new one; None where plans do not apply."""
        plan = module.__dict__.get("_call_plan")
        if (plan is not None and plan.x_shape == tuple(input_shape)
                and plan.dtype == x.dtype and plan.key == _module_key(module)):
            return plan
        make = getattr(backend, "forward_plan", None)
        if (make is None or module.num_layers != 1 or module.bidirectional
                or module.__dict__.get("_backend_name") not in (None, "cpu")
                or _busy(module._workspace)):
            return None
        _, kernel, recurrent, projection, bias_ih, bias_hh = _slot_weights(module)
        forward = make(kernel, recurrent, None, projection, module._activation,
                       module._recurrent_activation, x.shape, time_major=time_major,
                       return_sequences=True, go_backwards=bool(module._reverse_only),
                       output_order="time", workspace=module._workspace,
                       bias_parts=None if bias_ih is None else (bias_ih, bias_hh),
                       return_last=False)
        return None if forward is None else cls(module, input_shape, forward)

    def __call__(self, module: Any, input: Any, hx: Any) -> Any:
        """``forward``'s result, or None when the plan does not apply to the call."""
        if (type(input) is not np.ndarray or input.shape != self.x_shape
                or self.key != _module_key(module)):
            return None
        if input.dtype != self.dtype:
            if input.dtype.kind not in "biuf":
                return None       # the general path raises the error
            input = input.astype(self.dtype)     # any real dtype is cast, as there
        if hx is None and self.torch_step is not None:
            res = self.torch_step(input, None, None)
            if res is not None:
                return res[0], (res[1], res[2])
        h0 = c0 = None
        if hx is not None:
            if type(hx) not in (tuple, list) or len(hx) != 2:
                return None
            h0, c0 = hx
            if not (type(h0) is np.ndarray and type(c0) is np.ndarray
                    and h0.shape == self.h_shape and c0.shape == self.c_shape
                    and h0.dtype == self.dtype and c0.dtype == self.dtype):
                return None
            h0, c0 = h0.reshape(self.forward.state_shapes[0]), c0.reshape(
                self.forward.state_shapes[1])
            if self.torch_step is not None:   # streaming: module(x_t, hx) step after step
                res = self.torch_step(input, h0, c0)
                if res is not None:
                    return res[0], (res[1], res[2])
        res = self.forward.run(np.ascontiguousarray(input if self.batched else input[:, None]),
                               h0, c0)
        if res is None:
            return None
        seq, _, h, c = res
        if not self.batched:
            return seq[:, 0], (h, c)
        return seq, (h[None], c[None])

    def run(self, x: Any, h0: Any, c0: Any) -> Any:
        """``(output, (h_n, c_n))`` for checked arguments in the kernel's layout
        (h0, c0 2-D or None), or None (workspace busy)."""
        res = self.forward.run(x, h0, c0)
        if res is None:
            return None
        seq, _, h, c = res
        if not self.batched:
            return seq[:, 0], (h, c)
        return seq, (h[None], c[None])
