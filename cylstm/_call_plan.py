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

from operator import itemgetter
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


# The options a call's path depends on, compared with ``==`` (one C call
# builds each tuple: cheaper than reading the entries one by one).
_LAYER_OPTIONS = itemgetter("return_sequences", "return_state", "go_backwards", "stateful",
                            "time_major", "activity_regularizer", "use_cudnn", "dtype",
                            "built")
_CELL_OPTIONS = itemgetter("activation", "recurrent_activation", "use_bias", "dtype",
                           "dropout", "recurrent_dropout")


def _layer_options(layer):
    """Everything besides the arguments and the weights that a ``layers.LSTM``
    call's path depends on."""
    d = layer.__dict__
    return (_LAYER_OPTIONS(d), _CELL_OPTIONS(d["cell"].__dict__), d.get("_backend_name"),
            current_threads(), _FORCED.get())


def _layer_unchanged(plan, layer):
    """Whether ``layer`` is as it was when ``plan`` was made: its weight arrays
    the same objects (compared by identity: a replaced array is the common
    change, and the check is a pointer compare), then its options, the thread
    count and the backend in force as ``_layer_options`` reads them. Each
    ``__dict__`` is read once: on these classes an attribute read costs tens
    of nanoseconds (they define ``__getattr__``)."""
    d = layer.__dict__
    c = d["cell"].__dict__
    p = c.get("_params")
    if p is None:       # a cell that tracks sub-layers: its weights' view
        p = d["cell"]._params
    w = plan.weights
    o = plan.options
    return (p["kernel"] is w[0] and p["recurrent_kernel"] is w[1] and p.get("bias") is w[2]
            and _LAYER_OPTIONS(d) == o[0] and _CELL_OPTIONS(c) == o[1]
            and d.get("_backend_name") == o[2] and current_threads() == o[3]
            and _FORCED.get() is o[4])


def _cell_weights(cell):
    p = cell._params
    return (p.get("kernel"), p.get("recurrent_kernel"), p.get("bias"))


class LayerCallPlan:
    """The plan of one ``layers.LSTM`` call shape (no mask, not stateful, no
    activity regularizer, no dropout acting)."""

    # weights: compared by identity (the plan holds them: no other array can
    # be the same object while it lives); options by ``==``.
    __slots__ = ("options", "weights", "forward", "x_shape", "dtype", "state_shape",
                 "return_sequences", "return_state", "dropping")

    def __init__(self, layer: Any, x_shape: Any, forward: Any) -> None:
        self.options = _layer_options(layer)
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
                and _layer_unchanged(plan, layer)):
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
                or (training and self.dropping) or not _layer_unchanged(self, layer)):
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


_MODULE_OPTIONS = itemgetter("batch_first", "num_layers", "bidirectional", "dtype",
                             "_reverse_only", "_activation", "_recurrent_activation")


def _module_options(module):
    """As ``_layer_options`` for an ``nn.LSTM`` of one layer (its training mode
    and dropout act only between layers; the weight arrays stand for the
    sizes)."""
    d = module.__dict__
    return (type(module), _MODULE_OPTIONS(d), d.get("_backend_name"), current_threads(),
            _FORCED.get())


def _module_unchanged(plan, module):
    """As ``_layer_unchanged`` for an ``nn.LSTM``: its slot's arrays the same
    objects (a new slot has new arrays), then ``_module_options``."""
    d = module.__dict__
    slot = d["_slots"][0][0]
    w = plan.weights
    o = plan.options
    return (slot.kernel is w[0] and slot.recurrent is w[1] and slot.projection is w[2]
            and slot.bias_ih is w[3] and slot.bias_hh is w[4]
            and _MODULE_OPTIONS(d) == o[1] and type(module) is o[0]
            and d.get("_backend_name") == o[2] and current_threads() == o[3]
            and _FORCED.get() is o[4])


def _slot_weights(module):
    slot = module._slots[0][0]
    return (slot.kernel, slot.recurrent, slot.projection, slot.bias_ih, slot.bias_hh)


class ModuleCallPlan:
    """The plan of one ``nn.LSTM`` call shape (one layer, one direction, the
    common cell)."""

    __slots__ = ("options", "weights", "forward", "x_shape", "dtype", "h_shape", "c_shape",
                 "batched", "torch_step")

    def __init__(self, module: Any, x_shape: Any, forward: Any) -> None:
        self.options = _module_options(module)
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
                and plan.dtype == x.dtype and _module_unchanged(plan, module)):
            return plan
        make = getattr(backend, "forward_plan", None)
        if (make is None or module.num_layers != 1 or module.bidirectional
                or module.__dict__.get("_backend_name") not in (None, "cpu")
                or _busy(module._workspace)):
            return None
        kernel, recurrent, projection, bias_ih, bias_hh = _slot_weights(module)
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
                or not _module_unchanged(self, module)):
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
            if self.torch_step is not None:
                # Streaming (module(x_t, hx) step after step): the kernel
                # takes hx as given when both are C-contiguous (1, B, P) /
                # (1, B, H) arrays of its dtype, and checks that itself.
                res = self.torch_step(input, h0, c0, True)
                if res is not None:
                    return res[0], (res[1], res[2])
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
