"""Threads: ``cylstm.set_num_threads(n)`` and ``with cylstm.threads(n):``.

Large calls split their batch rows into up to ``n`` slices that run the
whole time loop in parallel (no barrier per step), and split the big weight
products of training the same way; BLAS itself always runs on one thread
inside cylstm's calls (see ``one_blas_thread``). Small calls run on one
thread. The count ``threads(n)`` sets applies to the current thread (and
task) only, ``set_num_threads(n)``'s to the process; both also set the BLAS
libraries' own thread limit, which is process-wide (see ``threads``).
The compiled loops release the GIL, so layers called from several Python
threads also run in parallel.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List

import contextlib
import contextvars
import functools
import os
import threading


@functools.lru_cache(maxsize=None)
def _cpu_count():
    """The CPUs this process may run on, read once: every call consults it,
    and the system call cost several microseconds per layer call."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


_scoped = contextvars.ContextVar("cylstm_threads", default=None)
_global = None
_controller = None
_lock = threading.Lock()
_pool = None
# Held while a backward pass adds its weight gradients into a layer's grads:
# threads training one layer (or one model) at once then lose no update.
# One lock for all layers: the adds are short next to the backward pass.
GRADIENT_LOCK = threading.Lock()


def _get_controller():
    global _controller
    if _controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS first)
        from threadpoolctl import ThreadpoolController  # not at import: not needed there
        _controller = ThreadpoolController()
    return _controller


_blas_lists: Dict[bool, List[Any]] = {}


def _blas_controllers(all_blas=False):
    """threadpoolctl's controllers for the BLAS that scipy's cython_blas calls
    (every BLAS loaded with ``all_blas``). Found once: each cylstm call
    consults them, and the search cost several microseconds per call."""
    found = _blas_lists.get(all_blas)
    if found is None:
        blas = [c for c in _get_controller().lib_controllers if c.user_api == "blas"]
        scipy_own = [c for c in blas
                     if "scipy" in os.path.basename(os.path.dirname(c.filepath))]
        found = _blas_lists[all_blas] = blas if all_blas else (scipy_own or blas)
    return found


def _check(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"The number of threads must be a positive integer, got {n!r}.")


def current_threads() -> int:
    """The thread count in force for a call made now."""
    n = _scoped.get()
    if n is None:
        n = _global if _global is not None else _cpu_count()
    return n


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for every later call (process-wide).

    Parameters
    ----------
    n : int
        A positive thread count. It caps cylstm's own threads (large calls
        split their batch rows over them) and, through threadpoolctl, the
        threads of scipy's BLAS.

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer.
    """
    global _global
    _check(n)
    _global = n
    _get_controller().limit(limits=n, user_api="blas")


def get_num_threads() -> int:
    """The thread count now in force.

    Returns
    -------
    int
        The count set by the innermost ``threads`` block, else by
        ``set_num_threads``, else the number of CPUs this process may use.
    """
    return current_threads()


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` threads, then restore the previous setting.

    Use as ``with cylstm.threads(2): ...``. Two things change inside the block:

    - how many threads cylstm's own calls split their work over: this count
      is local to the current thread (and asyncio task), so concurrent
      blocks in other threads do not see it;
    - the thread limit of the BLAS libraries (through threadpoolctl), for
      BLAS calls made outside cylstm's kernels (NumPy's ``@``, for instance).
      BLAS libraries have one setting per process, so this limit is
      process-wide while the block runs: other threads' BLAS calls see it too,
      and overlapping blocks in several threads restore it in the order they
      exit. cylstm's kernels are not affected: they always run BLAS on one
      thread per slice (see ``one_blas_thread``).

    Parameters
    ----------
    n : int
        A positive thread count for calls made inside the block.

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer.
    """
    _check(n)
    token = _scoped.set(n)
    try:
        with _get_controller().limit(limits=n, user_api="blas"):
            yield
    finally:
        _scoped.reset(token)


def blas_info() -> List[Dict[str, Any]]:
    """What threadpoolctl reports for the BLAS libraries in this process.

    Returns
    -------
    list of dict
        One dict per BLAS library loaded (``internal_api``, ``version``,
        ``num_threads``, ``filepath`` and the other keys threadpoolctl gives).
    """
    return [i for i in _get_controller().info() if i.get("user_api") == "blas"]


class _BlasLimit:
    """One BLAS library's thread count, read and set by direct calls into the
    library where threadpoolctl allows it: ``one_blas_thread`` runs on every
    layer call, and through threadpoolctl's methods it cost about 3.5 us
    (read, set to 1, set back) against about 2 us for the same calls made
    directly, and 0.5 us for the read alone when BLAS already runs on one
    thread (measured on the 2-core machine). The semantics stay
    threadpoolctl's: OpenBLAS with its own
    pthreads pool is set only by the Python thread that controls it (the
    first to set it), others go through threadpoolctl, which then does nothing.
    """

    __slots__ = ("controller", "get", "set", "shared")

    def __init__(self, controller):
        self.controller = controller
        self.get = controller.get_num_threads
        self.set = None
        self.shared = None
        if (getattr(controller, "internal_api", None) == "openblas"
                and getattr(controller, "threading_layer", None) != "openmp"):
            symbol = getattr(controller, "_get_symbol", None)
            shared = getattr(controller, "_SHARED_STATE", None)
            raw_get = symbol("openblas_get_num_threads") if symbol else None
            raw_set = symbol("openblas_set_num_threads") if symbol else None
            if raw_get is not None and raw_set is not None and shared is not None:
                self.get, self.set, self.shared = raw_get, raw_set, shared

    def set_threads(self, n):
        if self.set is not None and self.shared.controlling_thread is threading.current_thread():
            self.set(n)
        else:
            self.controller.set_num_threads(n)


_limits: Dict[bool, List[_BlasLimit]] = {}


def _blas_limits(all_blas):
    found = _limits.get(all_blas)
    if found is None:
        found = _limits[all_blas] = [_BlasLimit(c) for c in _blas_controllers(all_blas)]
    return found


def blas_limits(all_blas=False):
    """The ``_BlasLimit`` of scipy's BLAS (every BLAS with ``all_blas``), for
    callers that check ``limit.get() == 1`` before ``pin_one_blas_thread``."""
    return _blas_limits(all_blas)


def pin_one_blas_thread(all_blas=False):
    """Set scipy's BLAS (every BLAS with ``all_blas``) to one thread; returns
    what ``restore_blas_threads`` needs to undo it (None when nothing changed)."""
    changed = None
    for limit in _blas_limits(all_blas):
        n = limit.get()
        if n != 1:
            limit.set_threads(1)
            if changed is None:
                changed = []
            changed.append((limit, n))
    return changed


def restore_blas_threads(changed):
    """Undo ``pin_one_blas_thread`` (given what it returned)."""
    if changed:
        for limit, n in changed:
            limit.set_threads(n)


@contextlib.contextmanager
def one_blas_thread(all_blas=False):
    """Run the block with scipy's BLAS (every BLAS with ``all_blas``, NumPy's
    included) on one thread.

    cylstm does its own threading (batch slices, split weight products); a
    BLAS call with several threads would wake OpenBLAS's pool, whose threads
    then spin for a while on the very cores the next slices need (measured:
    after a threaded gemm, a 2-thread call ran at 1-thread speed). The NumPy
    path of the kernels (``all_blas``) makes hundreds of small products per
    call, each of which a threaded BLAS slows down (measured: 5x at batch
    64, 256 units on 2 cores)."""
    changed = pin_one_blas_thread(all_blas)
    try:
        yield
    finally:
        restore_blas_threads(changed)


def run_parallel(tasks):
    """Run callables (which release the GIL) at once: the first on this
    thread, the others on a shared pool."""
    global _pool
    if len(tasks) == 1:
        tasks[0]()
        return
    with _lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor  # not at import (logging, queue)
            _pool = ThreadPoolExecutor(max_workers=max(_cpu_count(), 2),
                                       thread_name_prefix="cylstm")
    futures = [_pool.submit(task) for task in tasks[1:]]
    tasks[0]()
    for f in futures:
        f.result()


def split(n, parts):
    """[(start, stop), ...]: n items in `parts` contiguous, near-equal ranges."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))
