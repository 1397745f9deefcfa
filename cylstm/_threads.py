"""BLAS thread control: ``cylstm.set_num_threads(n)`` and ``with cylstm.threads(n):``.

Both act on the BLAS that scipy's cython_blas calls (through threadpoolctl).
The compiled kernels release the GIL, so layers called from several Python
threads run in parallel; give each call 1 BLAS thread in that case.
"""
import contextlib

from threadpoolctl import ThreadpoolController

_controller = None
_global_limit = None


def _get_controller():
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


def _check(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"The number of threads must be a positive integer, got {n!r}.")


def set_num_threads(n):
    """Set the number of BLAS threads for every later call (process-wide)."""
    global _global_limit
    _check(n)
    _global_limit = _get_controller().limit(limits=n, user_api="blas")


def get_num_threads():
    """The BLAS thread count now in force (the largest if several BLAS are loaded)."""
    infos = [i for i in _get_controller().info() if i.get("user_api") == "blas"]
    return max((i["num_threads"] for i in infos), default=1)


@contextlib.contextmanager
def threads(n):
    """Run the block with ``n`` BLAS threads, then restore the previous count."""
    _check(n)
    with _get_controller().limit(limits=n, user_api="blas"):
        yield


def blas_info():
    """What threadpoolctl reports for the BLAS libraries in this process."""
    return [i for i in _get_controller().info() if i.get("user_api") == "blas"]
