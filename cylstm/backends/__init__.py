"""Backends: where arrays live and how the LSTM runs on them.

A backend is a :class:`Backend` (``backends/base.py``): the framework-free
LSTM contract (``lstm_forward(problem) -> (outputs, cache)``,
``lstm_backward(cache, grads) -> grads``, ``stepper(...)``) plus its arrays
(``xp``, ``asarray``, ``zeros``). The base class is the reference, written
on the array namespace ``xp``; ``CpuBackend`` (``backends/cpu.py``) is the
compiled one and the default for NumPy arrays.

``get_backend(*arrays)`` picks the backend of the arrays it is given (the
first array a registered backend owns; NumPy arrays -> ``"cpu"``; any other
array-API array -> the reference on its namespace); ``use_backend(name)``
forces one inside a ``with`` block (per thread and per asyncio task).

A new backend plugs in with ``register_backend(name, factory)``: the factory
makes the instance on first use (so optional imports stay lazy), and
``get_backend`` asks each registered instance, newest first, whether it
``owns`` an array.

Registered here: ``"cpu"`` (compiled kernels, NumPy arrays), ``"numpy"``
(the reference on NumPy) and ``"array_api_strict"`` (the reference on the
strict array-API namespace; needs that package).
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np

from .base import Backend, LSTMGrads, LSTMProblem

__all__ = ["Backend", "LSTMProblem", "LSTMGrads", "get_backend", "use_backend",
           "register_backend", "registered_backends", "backend_named", "forced_backend",
           "owning_backend", "move_array", "backend_copy"]

_FACTORIES: Dict[str, Callable[[], Backend]] = {}
_INSTANCES: Dict[str, Backend] = {}
_BY_NAMESPACE: Dict[int, Backend] = {}
_LOCK = threading.Lock()
_FORCED: contextvars.ContextVar[Optional[Backend]] = contextvars.ContextVar(
    "cylstm_backend", default=None)
DEFAULT = "cpu"


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Register a backend under ``name``; ``factory()`` makes it on first use.

    Parameters
    ----------
    name : str
    factory : callable
        Returns a :class:`Backend`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A backend name must be a non-empty string; got {name!r}.")
    with _LOCK:
        _FACTORIES[name] = factory
        _INSTANCES.pop(name, None)


def registered_backends() -> List[str]:
    """The names of the registered backends, in registration order.

    Returns
    -------
    list of str
    """
    return list(_FACTORIES)


def backend_named(name: str) -> Backend:
    """The registered backend ``name`` (made on first use).

    Parameters
    ----------
    name : str

    Returns
    -------
    Backend

    Raises
    ------
    ValueError
        For a name that is not registered.
    """
    backend = _INSTANCES.get(name)
    if backend is not None:
        return backend
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"Unknown backend {name!r}; registered: {registered_backends()}.")
    with _LOCK:
        backend = _INSTANCES.get(name)
        if backend is None:
            backend = _INSTANCES[name] = factory()
    return backend


def get_backend(*arrays: Any) -> Backend:
    """The backend for these arrays (None entries are skipped).

    Inside ``use_backend(name)`` that backend; otherwise the backend owning
    the first non-NumPy array (the reference on its namespace when no
    registered backend owns it), else the default, ``"cpu"``.

    Parameters
    ----------
    *arrays : array or None

    Returns
    -------
    Backend
    """
    forced = _FORCED.get()
    if forced is not None:
        return forced
    return owning_backend(*arrays)


# The backend use_backend forces in this context, or None (a C-level call:
# cheap enough for a per-step check).
forced_backend: Callable[[], Optional[Backend]] = _FORCED.get


def owning_backend(*arrays: Any) -> Backend:
    """The backend that owns the first non-NumPy array (``get_backend``'s rule
    without ``use_backend``), else the default ``"cpu"``.

    Parameters
    ----------
    *arrays : array or None

    Returns
    -------
    Backend
    """
    for a in arrays:
        if a is None or type(a) is np.ndarray or isinstance(a, (np.ndarray, np.generic)):
            continue
        namespace = getattr(a, "__array_namespace__", None)
        if namespace is None:
            continue
        xp = namespace()
        found = _BY_NAMESPACE.get(id(xp))
        if found is None:
            for name in reversed(list(_FACTORIES)):
                try:
                    backend = backend_named(name)
                except ImportError:    # an optional backend whose package is missing
                    continue
                if backend.owns(a):
                    found = backend
                    break
            else:
                found = Backend(xp, name=getattr(xp, "__name__", str(xp)))
            _BY_NAMESPACE[id(xp)] = found
        return found
    return _INSTANCES.get(DEFAULT) or backend_named(DEFAULT)


def move_array(array: Any, backend: Backend) -> Any:
    """``array`` (of any backend) as an array of ``backend``, with its dtype;
    the array itself when ``backend`` already owns it in the layout it needs.

    Parameters
    ----------
    array : array or None
    backend : Backend

    Returns
    -------
    array or None
    """
    if array is None:
        return None
    if not isinstance(array, np.ndarray):
        array = owning_backend(array).to_numpy(array)
    return backend.asarray(array, array.dtype)


def backend_copy(array: Any) -> Any:
    """A copy of ``array`` in an array its own backend made (``zeros``, then
    ``copy_into``): for weights that arrive from a pickle, whose memory NumPy
    placed (16-byte aligned), while the "cpu" backend's own start on a cache
    line, which the kernels read fastest. None stays None.

    Parameters
    ----------
    array : array or None

    Returns
    -------
    array or None
    """
    if array is None:
        return None
    backend = owning_backend(array)
    copy = backend.zeros(array.shape, array.dtype)
    backend.copy_into(copy, array)
    return copy


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[Backend]:
    """Run the LSTM code inside the block on backend ``name``.

    Parameters
    ----------
    name : str or Backend
        A registered name (or a backend instance).

    Yields
    ------
    Backend

    Examples
    --------
    >>> import numpy as np, cylstm
    >>> from cylstm.backends import use_backend
    >>> with use_backend("numpy"):   # the NumPy reference, not the compiled kernels
    ...     y = cylstm.layers.LSTM(2)(np.ones((1, 3, 4), "float32"))
    """
    backend = name if isinstance(name, Backend) else backend_named(name)
    token = _FORCED.set(backend)
    try:
        yield backend
    finally:
        _FORCED.reset(token)


def _cpu() -> Backend:
    from .cpu import CpuBackend
    return CpuBackend()


def _strict() -> Backend:
    import array_api_strict
    return Backend(array_api_strict, name="array_api_strict")


register_backend("cpu", _cpu)
register_backend("numpy", lambda: Backend(np, name="numpy"))
register_backend("array_api_strict", _strict)
