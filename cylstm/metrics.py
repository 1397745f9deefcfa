"""Metrics with Keras 3's names and semantics, as running means over batches.

A metric accumulates ``update_state(y_true, y_pred, sample_weight=None, mask=None)``
over batches and reports ``result()``: the mean of its per-sample values,
weighted by the number of samples of each batch (or by ``sample_weight``), as
Keras's ``MeanMetricWrapper``. ``metric(y_true, y_pred)`` updates and returns
the result; ``reset_state()`` starts over.

``'accuracy'``/``'acc'`` given to ``Sequential.compile`` is resolved the way
Keras's ``compile_utils.get_metric`` does, from the shapes of the first batch:
binary accuracy when ``y_pred`` has one unit on its last axis (sigmoid output
with binary cross-entropy), sparse categorical accuracy when ``y_true`` has one
axis fewer than ``y_pred`` (or a last axis of 1), categorical accuracy otherwise.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Tuple, Type, Union

import numpy as np

from . import losses as _losses
from ._serialization import Registry
from ._typing import Array, ArrayLike, Config

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "Metric", "Mean", "MeanMetricWrapper", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "Accuracy", "MeanAbsoluteError", "MeanSquaredError",
    "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
    "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy", "accuracy",
    "mean_absolute_error", "mean_squared_error", "mae", "mse", "get", "resolve",
    "serialize", "deserialize",
]


# -- per-sample functions (Keras's keras/src/metrics/accuracy_metrics.py) ------------

def _as_arrays(y_true, y_pred):
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    for name, a in (("y_true", y_true), ("y_pred", y_pred)):
        if a.dtype.kind not in "biuf":
            raise TypeError(f"`{name}` must hold real numbers; got dtype {a.dtype}.")
    return y_true, y_pred


def binary_accuracy(y_true: ArrayLike, y_pred: ArrayLike, threshold: float = 0.5) -> Array:
    """1.0 where ``(y_pred > threshold) == y_true``, per element.

    Parameters
    ----------
    y_true : array_like
        Targets.
    y_pred : array_like
        Predictions (their float dtype is the computation's).
    threshold : float, default 0.5
        The decision threshold.

    Returns
    -------
    numpy.ndarray
        One value per element.
    """
    y_true, y_pred = _as_arrays(y_true, y_pred)
    y_true, y_pred = _losses.squeeze_or_expand_to_same_rank(y_true, y_pred)
    y_pred = (y_pred > threshold).astype(y_true.dtype)
    return (y_true == y_pred).astype(np.float64)


def categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
    """1.0 where the argmax of ``y_pred`` equals that of one-hot ``y_true``.

    Parameters
    ----------
    y_true : array_like
        Targets.
    y_pred : array_like
        Predictions (their float dtype is the computation's).

    Returns
    -------
    numpy.ndarray
        One value per sample (per position for sequences).
    """
    y_true, y_pred = _as_arrays(y_true, y_pred)
    labels = np.argmax(y_true, axis=-1)
    shape = labels.shape
    reshape = False
    if labels.ndim == y_pred.ndim:
        labels = np.squeeze(labels, -1)
        reshape = True
    matches = (labels == np.argmax(y_pred, axis=-1)).astype(np.float64)
    return matches.reshape(shape) if reshape else matches


def sparse_categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
    """1.0 where the argmax of ``y_pred`` equals the integer ``y_true``.

    Parameters
    ----------
    y_true : array_like
        Targets.
    y_pred : array_like
        Predictions (their float dtype is the computation's).

    Returns
    -------
    numpy.ndarray
        One value per sample (per position for sequences).
    """
    y_true, y_pred = _as_arrays(y_true, y_pred)
    shape = y_true.shape
    reshape = False
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = np.squeeze(y_true, -1)
        reshape = True
    matches = (y_true == np.argmax(y_pred, axis=-1).astype(y_true.dtype)).astype(np.float64)
    if reshape:
        matches = matches.reshape(shape)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = np.squeeze(matches, -1)
    return matches


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
    """1.0 where ``y_pred`` equals ``y_true`` exactly.

    Parameters
    ----------
    y_true : array_like
        Targets.
    y_pred : array_like
        Predictions (their float dtype is the computation's).

    Returns
    -------
    numpy.ndarray
        One value per element.
    """
    y_true, y_pred = _as_arrays(y_true, y_pred)
    y_true, y_pred = _losses.squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true == y_pred).astype(np.float64)


def _loss_values(loss_cls, **kwargs):
    def fn(y_true, y_pred):
        return loss_cls(**kwargs).call(y_true, y_pred)
    return fn


mean_squared_error = mse = _losses.mean_squared_error
mean_absolute_error = mae = _losses.mean_absolute_error


# -- metric objects -------------------------------------------------------------------

class Metric:
    """Base class of the metrics: a running state updated batch by batch.

    ``update_state(...)`` adds a batch, ``result()`` gives the value,
    ``reset_state()`` starts again; ``metric(...)`` updates and returns the result.

    Parameters
    ----------
    name : str, optional
        The metric's name (the key in ``fit``'s logs).
    dtype : str, optional
        Kept in the config (computation is in float64).
    """

    _direction = "down"

    def __init__(self, name: Optional[str] = None, dtype: Any = None) -> None:
        self.name = name if name is not None else type(self).__name__.lower()
        self.dtype = dtype
        self.reset_state()

    def reset_state(self) -> None:
        """Forget every update (a fresh metric)."""
        raise NotImplementedError

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        """Add a batch to the running state.

        Parameters
        ----------
        *args, **kwargs
            As the metric takes them: ``(y_true, y_pred, sample_weight=None,
            mask=None)`` for the metrics of targets and predictions, ``(values,
            sample_weight=None)`` for ``Mean``.
        """
        raise NotImplementedError

    def result(self) -> float:
        """The metric's current value.

        Returns
        -------
        float
        """
        raise NotImplementedError

    def reset_states(self) -> None:
        """Forget every update (Keras 2's name of ``reset_state``)."""
        self.reset_state()

    def __call__(self, *args: Any, **kwargs: Any) -> float:
        """Update with one batch and return the result.

        Parameters
        ----------
        *args, **kwargs
            As ``update_state``.

        Returns
        -------
        float
        """
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> Config:
        """The metric's configuration (Keras 3's keys)."""
        return {"name": self.name, "dtype": self.dtype or "float32"}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """A metric from ``get_config()`` output.

        Parameters
        ----------
        config : dict

        Returns
        -------
        Metric
        """
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


def _reduce_to_samplewise(values, sample_weight):
    """Keras's ``reduce_to_samplewise_values`` with the mean: one value per sample."""
    values = np.asarray(values, dtype=np.float64)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        values, sample_weight = _losses.squeeze_or_expand_to_same_rank(values, sample_weight)
        w_ndim = sample_weight.ndim
        if values.ndim > w_ndim:
            values = values.mean(axis=tuple(range(w_ndim, values.ndim)))
        sample_weight = np.broadcast_to(sample_weight, values.shape)
        values = values * sample_weight
        if w_ndim > 1:
            sample_weight = sample_weight.mean(axis=tuple(range(1, w_ndim)))
    if values.ndim > 1:
        values = values.mean(axis=tuple(range(1, values.ndim)))
    return values, sample_weight


class Mean(Metric):
    """The (weighted) running mean of the values given to ``update_state``."""

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values: ArrayLike, sample_weight: Optional[ArrayLike] = None) -> None:
        """Add values (a weighted sum and count) to the running mean.

        Parameters
        ----------
        values : array_like
            Values, reduced to one per sample.
        sample_weight : array_like, optional
            A weight per sample.
        """
        values, sample_weight = _reduce_to_samplewise(values, sample_weight)
        self.total += float(np.sum(values))
        if sample_weight is not None:
            self.count += float(np.sum(sample_weight))
        elif values.ndim >= 1:
            self.count += values.shape[0]
        else:
            self.count += 1

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """A per-sample function ``fn(y_true, y_pred)`` as a running-mean metric.

    Parameters
    ----------
    fn : callable
        ``fn(y_true, y_pred, **kwargs)`` -> per-sample values.
    name : str, optional
        Default: ``fn.__name__``.
    dtype : str, optional
    **kwargs
        Passed to ``fn``.
    """

    def __init__(self, fn: Callable[..., Any], name: Optional[str] = None, dtype: Any = None,
                 **kwargs: Any) -> None:
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name=name if name is not None else getattr(fn, "__name__", "mean"),
                         dtype=dtype)

    def update_state(self, y_true: ArrayLike, y_pred: ArrayLike,
                     sample_weight: Optional[ArrayLike] = None,
                     mask: Optional[ArrayLike] = None) -> None:
        """Add the per-sample values of one batch to the running mean.

        Parameters
        ----------
        y_true : array_like
            Targets.
        y_pred : array_like
            Predictions (their float dtype is the computation's).
        sample_weight : array_like, optional
            A weight per sample (or per value).
        mask : array_like of bool, optional
            Positions to count (the model's output mask).
        """
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        if mask is not None:
            mask = np.asarray(mask).astype(np.float64)
            if sample_weight is None:
                sample_weight = mask
            else:
                mask, sample_weight = _losses.squeeze_or_expand_to_same_rank(
                    mask, np.asarray(sample_weight, dtype=np.float64))
                sample_weight = sample_weight * mask
        super().update_state(values, sample_weight=sample_weight)

    def get_config(self) -> Config:
        return {**super().get_config(), **self._fn_kwargs}


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``(y_pred > threshold)`` equals the binary target."""
    _direction = "up"

    def __init__(self, name: Optional[str] = "binary_accuracy", dtype: Any = None,
                 threshold: float = 0.5) -> None:
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        return cls(**config)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of the prediction equals the one-hot target's."""
    _direction = "up"

    def __init__(self, name: Optional[str] = "categorical_accuracy", dtype: Any = None) -> None:
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of the prediction equals the integer target."""
    _direction = "up"

    def __init__(self, name: Optional[str] = "sparse_categorical_accuracy",
                 dtype: Any = None) -> None:
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


class Accuracy(MeanMetricWrapper):
    """How often predictions equal targets exactly."""
    _direction = "up"

    def __init__(self, name: Optional[str] = "accuracy", dtype: Any = None) -> None:
        super().__init__(accuracy, name=name, dtype=dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    """Running mean of the per-sample mean absolute error."""

    def __init__(self, name: Optional[str] = "mean_absolute_error", dtype: Any = None) -> None:
        super().__init__(mean_absolute_error, name=name, dtype=dtype)


class MeanSquaredError(MeanMetricWrapper):
    """Running mean of the per-sample mean squared error."""

    def __init__(self, name: Optional[str] = "mean_squared_error", dtype: Any = None) -> None:
        super().__init__(mean_squared_error, name=name, dtype=dtype)


class BinaryCrossentropy(MeanMetricWrapper):
    """Running mean of the per-sample binary cross-entropy."""

    def __init__(self, name: Optional[str] = "binary_crossentropy", dtype: Any = None,
                 from_logits: bool = False,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(_loss_values(_losses.BinaryCrossentropy, from_logits=from_logits,
                                      label_smoothing=label_smoothing),
                         name=name, dtype=dtype)
        self.from_logits, self.label_smoothing = from_logits, label_smoothing

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype or "float32",
                "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(MeanMetricWrapper):
    """Running mean of the per-sample categorical cross-entropy."""

    def __init__(self, name: Optional[str] = "categorical_crossentropy", dtype: Any = None,
                 from_logits: bool = False,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(_loss_values(_losses.CategoricalCrossentropy, from_logits=from_logits,
                                      label_smoothing=label_smoothing),
                         name=name, dtype=dtype)
        self.from_logits, self.label_smoothing = from_logits, label_smoothing

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype or "float32",
                "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Running mean of the per-sample sparse categorical cross-entropy."""

    def __init__(self, name: Optional[str] = "sparse_categorical_crossentropy",
                 dtype: Any = None, from_logits: bool = False) -> None:
        super().__init__(_loss_values(_losses.SparseCategoricalCrossentropy,
                                      from_logits=from_logits), name=name, dtype=dtype)
        self.from_logits = from_logits

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype or "float32",
                "from_logits": self.from_logits}


_CLASSES = (BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, Accuracy,
            MeanAbsoluteError, MeanSquaredError, BinaryCrossentropy, CategoricalCrossentropy,
            SparseCategoricalCrossentropy, Mean)
_BY_CLASS = {c.__name__: c for c in _CLASSES}
_BY_NAME = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
_BY_FUNCTION = {binary_accuracy: BinaryAccuracy, categorical_accuracy: CategoricalAccuracy,
                sparse_categorical_accuracy: SparseCategoricalAccuracy,
                mean_absolute_error: MeanAbsoluteError, mean_squared_error: MeanSquaredError}

_REGISTRY = Registry(
    "metric", "keras.metrics", _BY_NAME, classes=_BY_CLASS, base=Metric,
    functions=_BY_FUNCTION, keep_names=True, only_registered=True, strict_config=True,
    callable_fallback=lambda fn: MeanMetricWrapper(fn),
    unknown_name=lambda identifier: ValueError(
        f"Could not interpret metric identifier: {identifier!r}. Expected 'accuracy' or one "
        f"of {sorted(_BY_NAME)}."),
    unknown=lambda identifier: ValueError(
        f"Could not interpret metric identifier: {identifier!r}."))


def is_binary_or_sparse_categorical(y_true: ArrayLike, y_pred: ArrayLike) -> Tuple[bool, bool]:
    """Keras's choice for ``"accuracy"``: ``(is_binary, is_sparse)`` from the shapes.

    Parameters
    ----------
    y_true : array_like
        Targets.
    y_pred : array_like
        Predictions (their float dtype is the computation's).

    Returns
    -------
    tuple of bool
    """
    t_shape, p_shape = np.shape(y_true), np.shape(y_pred)
    t_last = t_shape[-1] if t_shape else None
    p_last = p_shape[-1] if p_shape else None
    is_binary = p_last == 1
    is_sparse = len(t_shape) < len(p_shape) or (t_last == 1 and p_last is not None
                                                and p_last > 1)
    return is_binary, is_sparse


def resolve(identifier: Any, y_true: ArrayLike, y_pred: ArrayLike) -> Metric:
    """The metric object for ``identifier`` given the targets and predictions:
    ``"accuracy"``/``"acc"`` become binary, sparse or categorical accuracy
    as Keras chooses from the shapes.

    Parameters
    ----------
    identifier : str, dict, Metric or callable
    y_true : array_like
        Targets.
    y_pred : array_like
        Predictions (their float dtype is the computation's).

    Returns
    -------
    Metric
    """
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        is_binary, is_sparse = is_binary_or_sparse_categorical(y_true, y_pred)
        if is_binary:
            return BinaryAccuracy(name=identifier)
        if is_sparse:
            return SparseCategoricalAccuracy(name=identifier)
        return CategoricalAccuracy(name=identifier)
    metric = get(identifier)
    if isinstance(identifier, str):
        metric.name = identifier
    return metric


def serialize(metric: Union[str, Metric, Callable[..., Any]]) -> Union[str, Config]:
    """A metric given by name stays a string; a metric object becomes Keras 3's dict form.

    Parameters
    ----------
    metric : str or Metric

    Returns
    -------
    str or dict

    Raises
    ------
    ValueError
        For a metric that is not one of cylstm's classes.
    """
    return _REGISTRY.serialize(metric)


def deserialize(config: Union[str, Mapping[str, Any]]) -> Union[str, Metric]:
    """A metric from a name (returned as is) or ``{"class_name", "config"}``.

    Parameters
    ----------
    config : str or dict

    Returns
    -------
    str or Metric
    """
    if isinstance(config, str):
        return config
    return _REGISTRY.deserialize(config)


def get(identifier: Union[str, Mapping[str, Any], Metric, Type[Metric], Callable[..., Any]]
        ) -> Metric:
    """A metric object from a Keras name, a class, a function, a config dict or an instance.

    Parameters
    ----------
    identifier : str, dict, Metric, Metric subclass or callable
        A callable ``fn(y_true, y_pred)`` becomes a ``MeanMetricWrapper``.

    Returns
    -------
    Metric

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        raise ValueError("'accuracy' depends on the targets' and predictions' shapes; "
                         "use metrics.resolve(identifier, y_true, y_pred) or pass it "
                         "to Sequential.compile.")
    return _REGISTRY.get(identifier)
