"""Pickling of the objects that carry weights: weights and config travel,
scratch does not.

Pickling is how a model is shipped to another process (a Dask worker, a
``multiprocessing`` pool); the safe file format (``model.save`` /
``cylstm.models.load_model``) is how a model is stored on disk, since
unpickling can run code. A pickled layer, ``nn`` module, model or optimizer
holds its weights, its config, the state a later call depends on (dropout
generators, stateful states, optimizer moments, gradients that are not all
zero) and nothing else. Left out, by type, wherever they sit in an object's
attributes, and rebuilt empty on unpickling (the first call refills them):

- ``backends.cpu.Workspace`` (per-layer scratch and training stores),
- the streaming kernels (``StepKernel``: packed weights and step buffers),
- locks, thread-locals and executors (a lock cannot cross processes),
- dicts and lists holding only such kernels or workspaces (caches: emptied),
- attributes named in ``RESET_TO_NONE`` (caches a call rebuilds).

Gradients that are all zero (the state after ``zero_grad()`` or before any
backward pass, so after every ``fit``) are not written; the unpickled object
gets fresh zero arrays. Non-zero gradients are kept, so pickling between a
backward pass and the optimizer step loses nothing.
"""
import sys
import threading

import numpy as np

# Caches that a call rebuilds on demand.
RESET_TO_NONE = frozenset({"_stepper", "_stepper_forced", "_zero_states", "_call_plan"})

_LOCK = type(threading.Lock())
_RLOCK = type(threading.RLock())


class Fresh:
    """Stands in for a scratch object in a pickled state: what to rebuild."""

    __slots__ = ("kind",)

    def __init__(self, kind):
        self.kind = kind

    def __reduce__(self):
        return (Fresh, (self.kind,))

    def __repr__(self):
        return f"Fresh({self.kind!r})"


def _scratch_kind(name, value):
    """The kind of scratch ``value`` is (None when it must be pickled)."""
    from ._kernels.lstm_step import StepKernel
    from .backends.cpu import Workspace

    if name in RESET_TO_NONE or isinstance(value, StepKernel):
        return "none"
    if isinstance(value, Workspace):
        return "workspace"
    if isinstance(value, _LOCK):
        return "lock"
    if isinstance(value, _RLOCK):
        return "rlock"
    if isinstance(value, threading.local):
        return "local"
    futures = sys.modules.get("concurrent.futures")  # no executor exists before its import
    if futures is not None and isinstance(value, futures.Executor):
        return "none"
    # A cache of kernels or workspaces (per thread, per batch size): emptied.
    if isinstance(value, (dict, list)) and value:
        items = value.values() if isinstance(value, dict) else value
        if all(isinstance(v, (StepKernel, Workspace)) for v in items):
            return type(value).__name__
    return None


def _rebuild(kind):
    if kind == "workspace":
        from .backends.cpu import Workspace
        return Workspace()
    if kind == "lock":
        return threading.Lock()
    if kind == "rlock":
        return threading.RLock()
    if kind == "local":
        return threading.local()
    if kind == "dict":
        return {}
    if kind == "list":
        return []
    return None


def without_scratch(attributes):
    """A copy of an object's ``__dict__`` with scratch replaced by ``Fresh``."""
    state = {}
    for name, value in attributes.items():
        kind = _scratch_kind(name, value)
        state[name] = value if kind is None else Fresh(kind)
    return state


def rebuild_scratch(state):
    """``state`` with every ``Fresh`` replaced by a new empty object."""
    return {name: _rebuild(value.kind) if isinstance(value, Fresh) else value
            for name, value in state.items()}


def all_zero(arrays):
    """Whether every array (None entries skipped) holds only zeros."""
    return all(a is None or not np.any(a) for a in arrays)
