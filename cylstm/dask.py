"""Batch prediction and many-models training on a Dask cluster.

Needs the optional extra ``cylstm[dask]`` (dask and distributed); ``import
cylstm`` does not import this module. Dask does the scheduling, the data
movement and the recovery from lost workers; this module only writes the
graph a user would otherwise write by hand and get subtly wrong:

- ``predict(model, data)``: a lazily computed ``dask.array`` of the model's
  outputs for ``data``, a ``dask.array`` chunked along the batch. The model
  is one key of the graph, so each worker receives it once, however many
  chunks it computes; each task runs cylstm (and BLAS) on
  ``threads_per_task`` threads (1 by default: Dask's parallelism is the
  workers). Results are bit for bit those of the same calls made in one
  process.
- ``fit_many(build_fn, series)``: one model per series, each trained in one
  task with its own seed (``seed + i`` for the i-th series), so the results
  equal fitting the series one by one with those seeds. A series that cannot
  be trained (NaN, wrong shape, an exception in ``build_fn`` or ``fit``)
  comes back as a ``SeriesError`` in its ``SeriesFit``; the others are kept.

Both run on Dask's current scheduler: the ``distributed.Client`` made last
(``Client(LocalCluster(...))``, or a client of a dask-jobqueue, Kubernetes
or Coiled cluster), else Dask's local threads. Pickling ships the models
(see ``cylstm/_pickling.py``): weights and config, no scratch buffers.
"""
import copy
import math
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.base import tokenize
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("cylstm.dask needs dask: pip install \"cylstm[dask]\" "
                      "(dask and distributed).") from error

from ._threads import threads as _threads
from .utils import set_random_seed

__all__ = ["predict", "fit_many", "make_windows", "SeriesFit", "SeriesError"]

# Rows per chunk when ``data`` is a NumPy array (or ``chunk_rows`` asks):
# enough work per task (ms) that Dask's per-task overhead (~1 ms on a
# distributed cluster) stays small, small enough for several tasks per worker.
DEFAULT_CHUNK_ROWS = 4096


# -- predict -------------------------------------------------------------------------

def predict(model: Any, data: Any, *, batch_size: Optional[int] = None,
            chunk_rows: Optional[int] = None, batch_axis: Optional[int] = None,
            threads_per_task: Optional[int] = 1) -> Any:
    """The outputs of ``model`` for ``data``, as lazily computed dask arrays.

    Parameters
    ----------
    model : Sequential, layer or nn module
        A model with a ``predict`` method (``cylstm.Sequential``, what
        ``cylstm.from_keras`` returns): each chunk runs
        ``model.predict(chunk, batch_size=batch_size, verbose=0)``. Anything
        else is called: ``model(chunk)`` for ``cylstm.layers`` layers (also
        with ``return_state``) and ``cylstm.nn`` modules, whose
        ``(output, (h_n, c_n))`` comes back as the same structure of dask
        arrays. The model must be built (weights set), and not stateful
        (chunks run in parallel, so no state can pass from one to the next).
    data : dask.array.Array or numpy.ndarray
        ``(N, T, F)`` sequences (``(N, T)`` token ids for a model that starts
        with an ``Embedding``), chunked along the batch axis N; the other
        axes are rechunked to one chunk. A NumPy array is cut into chunks of
        ``chunk_rows`` rows. The batch axis is 1 for a ``time_major`` layer
        and an ``nn`` module with ``batch_first=False``, as in their calls;
        ``batch_axis`` overrides.
    batch_size : int, optional
        Rows per model call inside a chunk. For models with ``predict``
        (default 32, Keras's), chunks are cut at multiples of ``batch_size``
        so that each row is computed in the same batch as by
        ``model.predict(data, batch_size=batch_size)`` in one process.
        For called models, ``None`` (default) calls the model on the whole
        chunk, an integer in slices of that many rows.
    chunk_rows : int, optional
        Rechunk the batch axis to this many rows per chunk (rounded up to a
        multiple of ``batch_size``).
    threads_per_task : int or None
        Threads cylstm (and BLAS, through ``cylstm.threads``) use inside each
        task; 1 by default, with one task per core (``threads_per_worker=1``
        and one worker process per core, or ``nthreads`` tasks per worker).
        ``None`` keeps the worker's own setting.

    Returns
    -------
    dask.array.Array, or the model's output structure (list or tuple) of them
        Nothing is computed until ``.compute()`` / ``dask.compute(...)``. When
        the model has several outputs, compute them together
        (``dask.compute(out, h, c)``) so that each chunk runs once.

    Bit for bit: each chunk's rows are computed by the same calls as in one
    process: ``predict`` results equal
    ``model.predict(x, batch_size=batch_size)``. A called model's rows equal
    ``model(x)`` in
    float64 always; in float32 cylstm picks its recurrent product by the
    number of rows in a call (1 row, 4-256 rows, more), so the rows equal
    those of ``model(x)`` when the chunks and ``x`` fall in the same range
    (e.g. both above 256 rows), and always those of the same calls made on
    the same slices in one process.
    """
    _check_threads(threads_per_task)
    has_predict = callable(getattr(model, "predict", None))
    if not has_predict and not callable(model):
        raise TypeError("`model` must have a `predict` method (cylstm.Sequential) or be "
                        f"callable (a cylstm layer or nn module); got {type(model).__name__}.")
    if getattr(model, "built", True) is False:
        raise ValueError(f"`model` ({type(model).__name__}) is not built: its weights do not "
                         "exist yet, so every worker would draw its own. Build it (call it "
                         "once, `build(input_shape)`, or load weights) before predict.")
    stateful = [getattr(layer, "name", type(layer).__name__) for layer in _layers_of(model)
                if getattr(layer, "stateful", False)]
    if stateful:
        raise ValueError(f"`model` has stateful layers ({', '.join(stateful)}): their state "
                         "passes from one call to the next, which chunks computed in "
                         "parallel cannot do. Use a copy built with stateful=False.")
    if getattr(model, "training", False) and getattr(model, "dropout", 0):
        raise ValueError(f"`model` ({type(model).__name__}) is in training mode with "
                         f"dropout={model.dropout}: its outputs would be random. Call "
                         "model.eval() before predict.")
    if batch_size is not None:
        _check_positive(batch_size, "batch_size")
    if chunk_rows is not None:
        _check_positive(chunk_rows, "chunk_rows")
    if has_predict and batch_size is None:
        batch_size = 32
    axis = _input_batch_axis(model, has_predict) if batch_axis is None else batch_axis

    if isinstance(data, np.ndarray):
        data = da.from_array(data, chunks=_numpy_chunks(data, axis, chunk_rows))
    elif not isinstance(data, da.Array):
        raise TypeError("`data` must be a dask.array.Array (or a NumPy array); got "
                        f"{type(data).__name__}.")
    if data.ndim < 2:
        raise ValueError(f"`data` must have a batch axis and a time axis, (N, T, F) or (N, T); "
                         f"got shape {data.shape}.")
    if isinstance(axis, bool) or not isinstance(axis, int) or not 0 <= axis < data.ndim:
        raise ValueError(f"`batch_axis` must be an axis of `data` (0..{data.ndim - 1}); "
                         f"got {axis!r}.")
    if any(math.isnan(s) for s in data.shape):
        raise ValueError("`data` has unknown chunk sizes (NaN); call "
                         "`data.compute_chunk_sizes()` first.")
    if data.shape[axis] == 0:
        raise ValueError(f"`data` has no rows: shape {data.shape} (batch axis {axis}).")
    data = data.rechunk({ax: (-1 if ax != axis else _row_chunks(data.chunks[axis],
                                                                 batch_size, chunk_rows))
                         for ax in range(data.ndim)})

    structure, probes = _probe(model, has_predict, data, axis)
    out_axes = [_batch_axis_of(a, b, i) for i, (a, b) in enumerate(zip(*probes))]

    # The model is one literal in the graph; every chunk's task depends on its key.
    model_key = dask.delayed(model, pure=True, traverse=False,
                             name="cylstm-model-" + tokenize(model))
    letters = "abcdefghijklmnopqrstuvwxyz"
    in_index = letters[:data.ndim]
    row_chunks = data.chunks[axis]
    records = da.blockwise(
        _predict_block, in_index[axis], data, in_index, model_key, None, has_predict, None,
        batch_size, None, threads_per_task, None, axis, None, tuple(out_axes), None,
        dtype=object, concatenate=True, adjust_chunks={in_index[axis]: (1,) * len(row_chunks)},
        meta=np.empty((0,), object))
    leaves = []
    for i, (probe, out_axis) in enumerate(zip(probes[0], out_axes)):
        index = letters[:probe.ndim]
        new_axes = {index[d]: probe.shape[d] for d in range(probe.ndim) if d != out_axis}
        leaves.append(da.blockwise(
            _leaf, index, records, index[out_axis], i, None,
            new_axes=new_axes, adjust_chunks={index[out_axis]: row_chunks},
            dtype=probe.dtype, meta=np.empty((0,) * probe.ndim, probe.dtype)))
    return structure(iter(leaves))


def _predict_block(block, model, has_predict, batch_size, threads, axis, out_axes):
    """One chunk: the model's output leaves, in a 1-element object array."""
    with _thread_limit(threads):
        leaves = _flatten(_run(model, has_predict, block, batch_size, axis, out_axes))[0]
    record = np.empty(1, object)
    record[0] = tuple(leaves)
    return record


def _leaf(record, i):
    return record[0][i]


def _run(model, has_predict, x, batch_size, axis, out_axes):
    if has_predict:
        return model.predict(x, batch_size=batch_size, verbose=0)
    n = x.shape[axis]
    if batch_size is None or batch_size >= n:
        return model(x)
    parts = [model(np.take(x, np.arange(i, min(i + batch_size, n)), axis=axis))
             for i in range(0, n, batch_size)]
    flat = [_flatten(p)[0] for p in parts]
    _, structure = _flatten(parts[0])
    return structure(iter(np.concatenate([f[k] for f in flat], axis=out_axes[k])
                          for k in range(len(flat[0]))))


def _probe(model, has_predict, data, axis):
    """The output structure and two sets of zero-input outputs (batch 2, 3):
    their shapes and dtypes, and the axis that grows with the batch. Runs on
    a copy, so the model itself is not touched."""
    twin = copy.deepcopy(model)
    outs = []
    for n in (2, 3):
        shape = list(data.shape)
        shape[axis] = n
        x = np.zeros(shape, data.dtype)
        leaves, structure = _flatten(_run(twin, has_predict, x, None, axis, None))
        outs.append(leaves)
    return structure, outs


def _batch_axis_of(a, b, i):
    grown = [d for d in range(a.ndim) if a.shape[d] == 2 and b.shape[d] == 3]
    if a.ndim != b.ndim or len(grown) != 1 or any(
            a.shape[d] != b.shape[d] for d in range(a.ndim) if d != grown[0]):
        raise ValueError(f"Output {i} of the model (shape {a.shape} for 2 sequences, "
                         f"{b.shape} for 3) has no single batch axis; cylstm.dask.predict "
                         "needs one in every output.")
    return grown[0]


def _flatten(obj):
    """(leaves, rebuild): the arrays of a nested list/tuple, and a function
    that rebuilds the structure from an iterator of replacements."""
    if isinstance(obj, np.ndarray):
        return [obj], lambda it: next(it)
    if isinstance(obj, (list, tuple)):
        parts = [_flatten(o) for o in obj]
        kind = type(obj)

        def rebuild(it):
            return kind(p[1](it) for p in parts)
        return [leaf for p in parts for leaf in p[0]], rebuild
    raise TypeError(f"cylstm.dask.predict handles outputs that are arrays or lists/tuples "
                    f"of arrays; the model returned a {type(obj).__name__}.")


def _layers_of(model):
    out = []
    for layer in getattr(model, "layers", None) or [model]:
        out.append(layer)
        out.extend(getattr(layer, name) for name in ("forward_layer", "backward_layer")
                   if getattr(layer, name, None) is not None)
    return out


def _input_batch_axis(model, has_predict):
    if has_predict:
        return 0          # predict slices its batches along the first axis
    if hasattr(model, "batch_first"):
        return 0 if model.batch_first else 1
    return 1 if getattr(model, "time_major", False) else 0


def _numpy_chunks(data, axis, chunk_rows):
    chunks = [-1] * data.ndim
    if axis < data.ndim:
        chunks[axis] = chunk_rows or DEFAULT_CHUNK_ROWS
    return tuple(chunks)


def _row_chunks(chunks, batch_size, chunk_rows):
    """Chunk sizes along the batch axis: ``chunk_rows`` if given, else the
    present ones; each a multiple of ``batch_size`` except the last."""
    n = int(sum(chunks))
    step = batch_size or 1
    if chunk_rows is None:
        if all(c % step == 0 for c in chunks[:-1]):
            return tuple(chunks)
        chunk_rows = max(chunks)
    size = max(step, -(-chunk_rows // step) * step)
    return tuple(min(size, n - i) for i in range(0, n, size))


# -- fit_many ------------------------------------------------------------------------

@dataclass
class SeriesError:
    """Why one series of ``fit_many`` was not trained."""

    key: Any
    type: str            #: the exception's class name ('ValueError', ...)
    message: str         #: what was wrong, naming the series
    traceback: str = ""  #: where it happened (empty for the input checks)

    def __str__(self) -> str:
        return f"series {self.key!r}: {self.type}: {self.message}"


@dataclass
class SeriesFit:
    """The outcome of training on one series.

    ``model`` is the trained model (``return_models=True``), else None and
    ``weights`` holds ``model.get_weights()``. ``history`` is the fit's
    ``History.history`` (loss per epoch, ...). ``error`` is a
    ``SeriesError`` when the series could not be trained (``ok`` is False).
    """

    key: Any
    seed: int
    model: Any = None
    weights: Optional[List[np.ndarray]] = None
    history: Dict[str, List[float]] = field(default_factory=dict)
    error: Optional[SeriesError] = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def make_windows(values: Any, lookback: int, horizon: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Training pairs from one univariate series: ``x`` (n, lookback, 1) holds
    ``lookback`` consecutive values, ``y`` (n, horizon) the ``horizon`` values
    that follow; n = len(values) - lookback - horizon + 1."""
    values = np.asarray(values)
    n = len(values) - lookback - horizon + 1
    x = np.lib.stride_tricks.sliding_window_view(values[:n + lookback - 1], lookback)
    y = np.lib.stride_tricks.sliding_window_view(values[lookback:], horizon)[:n]
    return np.ascontiguousarray(x[..., None]), np.ascontiguousarray(y)


# One fit at a time per process: seeding (set_random_seed) and fit's shuffling
# use process-global generators, which two threads of one worker would share.
_FIT_LOCK = threading.Lock()


def fit_many(build_fn: Callable[[], Any], series: Any, *, lookback: Optional[int] = None,
             horizon: int = 1, fit_kwargs: Optional[Dict[str, Any]] = None, seed: int = 0,
             return_models: bool = True, threads_per_task: Optional[int] = 1,
             scheduler: Any = None) -> Dict[Hashable, SeriesFit]:
    """Train one model per series on the current Dask scheduler.

    Parameters
    ----------
    build_fn : callable
        ``build_fn()`` returns a new compiled model (``cylstm.Sequential``
        after ``compile``); it runs on the worker, after the series' seed is
        set, so default initializers draw the same weights as in one process.
    series : sequence or mapping
        The series, by position (keys 0..n-1) or by key. With ``lookback``
        each is a 1-D array-like of values, windowed by ``make_windows(values,
        lookback, horizon)``; without, each is an ``(x, y)`` pair of training
        arrays with the same first dimension.
    fit_kwargs : dict, optional
        Passed to ``model.fit`` (``epochs``, ``batch_size``, ``callbacks``,
        ``validation_split``, ...); ``verbose`` is 0.
    seed : int
        Series i (in input order) is fitted after
        ``cylstm.utils.set_random_seed(seed + i)``: the same result as
        ``set_random_seed(seed + i); model = build_fn(); model.fit(x, y,
        **fit_kwargs)`` in one process.
    return_models : bool
        Return the trained models (True) or only their weights.
    threads_per_task : int or None
        cylstm/BLAS threads inside each fit (1; None keeps the worker's).
    scheduler : optional
        Passed to ``dask.compute`` (default: the current client, if any).

    Returns
    -------
    dict
        key -> ``SeriesFit``, in input order. A series with NaN/inf values,
        the wrong shape, too few values, or whose ``build_fn``/``fit`` raised,
        has ``ok == False`` and its ``error`` says why; the others are
        unaffected. Within a worker process one fit runs at a time (seeding
        is process-wide), so use one thread per worker process.
    """
    if not callable(build_fn):
        raise TypeError(f"`build_fn` must be callable (returning a compiled model); got "
                        f"{type(build_fn).__name__}.")
    if lookback is not None:
        _check_positive(lookback, "lookback")
        _check_positive(horizon, "horizon")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an integer; got {seed!r}.")
    _check_threads(threads_per_task)
    fit_kwargs = dict(fit_kwargs or {})
    fit_kwargs.pop("verbose", None)
    if hasattr(series, "keys") and callable(series.keys):
        keys = list(series.keys())
        values = [series[k] for k in keys]
    elif isinstance(series, (list, tuple)):
        keys = list(range(len(series)))
        values = list(series)
    else:
        raise TypeError("`series` must be a list/tuple of series or a mapping key -> "
                        f"series; got {type(series).__name__}.")
    if not keys:
        return {}
    builder = dask.delayed(build_fn, pure=True, traverse=False,
                           name="cylstm-build-fn-" + tokenize(build_fn))
    task = dask.delayed(_fit_one, pure=False)
    tasks = [task(builder, key, value, int(seed) + i, lookback, horizon, fit_kwargs,
                  return_models, threads_per_task)
             for i, (key, value) in enumerate(zip(keys, values))]
    kwargs = {} if scheduler is None else {"scheduler": scheduler}
    results = dask.compute(*tasks, **kwargs)
    return dict(zip(keys, results))


def _fit_one(build_fn, key, data, seed, lookback, horizon, fit_kwargs, return_models,
             threads):
    """Train one series; never raises (an error is the result)."""
    start = time.perf_counter()
    try:
        x, y = _training_arrays(key, data, lookback, horizon)
    except (TypeError, ValueError) as e:
        return SeriesFit(key, seed, error=SeriesError(key, type(e).__name__, str(e)))
    try:
        with _FIT_LOCK, _thread_limit(threads):
            set_random_seed(seed)
            model = build_fn()
            # a copy per series: callbacks (EarlyStopping, ...) keep state
            history = model.fit(x, y, verbose=0, **copy.deepcopy(fit_kwargs))
    except Exception as e:  # noqa: BLE001 - any failure belongs to this series only
        return SeriesFit(key, seed, error=SeriesError(
            key, type(e).__name__, f"series {key!r}: {e}", traceback.format_exc()),
            seconds=time.perf_counter() - start)
    logs = dict(getattr(history, "history", None) or {})
    return SeriesFit(key, seed, model=model if return_models else None,
                     weights=None if return_models else model.get_weights(),
                     history=logs, seconds=time.perf_counter() - start)


def _training_arrays(key, data, lookback, horizon):
    """(x, y) for one series, checked: shape, length, finite values."""
    name = f"series {key!r}"
    if lookback is not None:
        try:
            values = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must be a 1-D array of numbers; got "
                            f"{type(data).__name__} ({e}).") from None
        if values.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one value per time step) with "
                             f"lookback={lookback}; got shape {values.shape}.")
        if len(values) < lookback + horizon:
            raise ValueError(f"{name} has {len(values)} values; lookback={lookback} and "
                             f"horizon={horizon} need at least {lookback + horizon}.")
        _check_finite(values, name, "values")
        return make_windows(values, lookback, horizon)
    if not isinstance(data, (list, tuple)) or len(data) != 2:
        raise ValueError(f"{name} must be an (x, y) pair of arrays (or pass lookback= to "
                         f"window 1-D series); got {type(data).__name__}.")
    x, y = (np.asarray(a) for a in data)
    if x.ndim not in (2, 3):
        raise ValueError(f"{name}: x must be (samples, timesteps, features) or (samples, "
                         f"timesteps) token ids; got shape {x.shape}.")
    if y.ndim == 0 or len(y) != len(x):
        raise ValueError(f"{name}: y must have one row per sample of x ({len(x)}); got "
                         f"shape {y.shape}.")
    if len(x) == 0:
        raise ValueError(f"{name} has no samples.")
    for label, a in (("x", x), ("y", y)):
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name}: {label} must hold numbers; got dtype {a.dtype}.")
        _check_finite(a, name, label)
    return x, y


def _check_finite(a, name, label):
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            where = first[0] if len(first) == 1 else first
            raise ValueError(f"{name}: {label} holds {int(bad.sum())} NaN or infinite "
                             f"value(s) (first at index {where}); fill or drop them first.")


# -- shared ----------------------------------------------------------------------------

class _thread_limit:
    """``cylstm.threads(n)`` for one task (nothing when n is None)."""

    def __init__(self, n):
        self._cm = None if n is None else _threads(n)

    def __enter__(self):
        if self._cm is not None:
            self._cm.__enter__()

    def __exit__(self, *exc):
        if self._cm is not None:
            return self._cm.__exit__(*exc)
        return False


def _check_threads(n):
    if n is not None:
        _check_positive(n, "threads_per_task")


def _check_positive(value, argument):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{argument}` must be a positive integer; got {value!r}.")
